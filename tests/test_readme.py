"""The README's quickstart runs as written (what a new user copies first)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_quickstart_runs_and_applies_the_recommended_budgets() -> None:
    quickstart = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    sent: list[str] = []
    ns: dict[str, Any] = {
        "SECRET": secrets.token_bytes(32),
        "send_email": lambda nir, code: sent.append(code),
    }
    exec(compile(quickstart, "README.md", "exec"), ns)  # noqa: S102 - our own README
    nir, fp, ip = "185 077 512 3456", "fp-firefox", "203.0.113.7"
    assert ns["after_password"](nir, None, fp, ip)["code_sent"] is True
    again = ns["after_password"](nir, None, fp, ip)  # within the minute: TOO_SOON
    assert "Réessayez dans 1 minute" in again["error"]
    wrong = f"{(int(sent[0]) + 1) % 10**6:06d}"
    assert ns["code_typed"](nir, wrong, False, fp)["attempts_left"] == 2
    done = ns["code_typed"]("1850775123456", sent[0], True, fp)  # the same account
    assert done["logged_in"] is True
    assert ns["after_password"](nir, done["set_cookie"], fp, ip) == {"logged_in": True}
    assert ns["codes"].policy.max_codes_per_day == 10
