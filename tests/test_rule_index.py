"""Every rule of RULES.md has a test named after it (``test_r<N>_<M>_...``).

``docs/spec/RULES.md`` is the rules text, kept verbatim in the repository (CI has only
the clone); when the shared spec is next to the checkout (``../shared/spec/RULES.md``,
as on the maintainers' machines), the copy must be identical to it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec" / "RULES.md"
SHARED = ROOT.parent / "shared" / "spec" / "RULES.md"

#: rules of RULES.md that are not built yet, with the issue that builds them: each must have
#: no test yet (then it leaves this list), and every other rule must have one
NOT_YET: dict[str, str] = {}  # rule id -> why it has no test yet (every rule has one today)


def rule_ids(text: str) -> list[str]:
    """``R<N>.<M>`` of every numbered sentence under a ``## R<N>.`` heading."""
    ids, section = [], None
    for line in text.splitlines():
        heading = re.match(r"## R(\d+)\. ", line)
        if heading:
            section = heading.group(1)
        elif section and (item := re.match(r"(\d+)\. ", line)):
            ids.append(f"R{section}.{item.group(1)}")
    return ids


def named_in_tests() -> set[str]:
    """The rule ids that some ``test_r<N>_<M>_...`` function names."""
    found = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for n, m in re.findall(r"^(?:async )?def test_r(\d+)_(\d+)_", path.read_text(), re.M):
            found.add(f"R{n}.{m}")
    return found


def test_the_rules_copy_is_the_shared_spec() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not here (a clean clone): the copy is what the tests read")
    assert SPEC.read_text() == SHARED.read_text(), "copy ../shared/spec/RULES.md to docs/spec"


def test_rule_ids_are_read_from_the_spec() -> None:
    ids = rule_ids(SPEC.read_text())
    assert ids[:3] == ["R1.1", "R1.2", "R1.3"]
    assert {"R2.7", "R6.3", "R9.4", "R12.2"} <= set(ids)
    assert len(ids) == len(set(ids))


def test_every_rule_has_a_test_named_after_it() -> None:
    ids = rule_ids(SPEC.read_text())
    tested = named_in_tests()
    missing = [r for r in ids if r not in tested and r not in NOT_YET]
    assert not missing, f"rules without a test_r<N>_<M>_... test: {missing}"


def test_rules_not_built_yet_are_listed_honestly() -> None:
    ids = set(rule_ids(SPEC.read_text()))
    assert set(NOT_YET) <= ids, "NOT_YET names a rule that RULES.md does not have"
    built = sorted(r for r in NOT_YET if r in named_in_tests())
    assert not built, f"{built} now have tests: take them out of NOT_YET"
