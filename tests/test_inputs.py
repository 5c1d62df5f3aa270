"""RULES.md R7 (bad input) on every public entry point, and fuzzing of device tokens.

R7: 'Anything else raises TypeError or ValueError with a message that names the
argument, before anything is read or stored.' Every test checks the exception
type, that the message names the argument, and that the store holds exactly
what it held before the call (``harness.dump()``).
"""

from __future__ import annotations

import re
import string
import time
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ameli_otp import (
    AsyncMemoryBackend,
    AsyncRedisBackend,
    AsyncSecurityCodes,
    AsyncSlidingWindowLimiter,
    Issued,
    MemoryBackend,
    Policy,
    Reason,
    RedisBackend,
    Refused,
    SecurityCodes,
    SlidingWindowLimiter,
    Verified,
)
from tests.harness import SECRET, Harness

ACCOUNT = "1850775123456"
FP = "fp-firefox-128-linux-1920x1080"
OTHER_FP = "fp-chrome-131-windows-2560x1440"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
FUZZ = settings(max_examples=200, deadline=None)

#: refused as account ids and as limiter keys alike
BAD_IDS: list[tuple[object, type[Exception]]] = [
    (None, TypeError),
    (123, TypeError),
    (1.5, TypeError),
    (b"1850775123456", TypeError),
    (["1850775123456"], TypeError),
    (bytearray(b"1850775123456"), TypeError),
    ("", ValueError),
    ("a" * 257, ValueError),
    ("é" * 257, ValueError),
]
#: every whitespace character of str.isspace, which R7.1 removes from account ids
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
#: refused as account ids only (R7.1): limiter keys are not normalised
BAD_ACCOUNTS: list[tuple[object, type[Exception]]] = [
    *BAD_IDS,
    (" ", ValueError),  # empty once whitespace is removed
    (WHITESPACE, ValueError),
    ("\x00", ValueError),  # a NUL
    ("185077\x005123456", ValueError),
    ("\ud800", ValueError),  # a lone surrogate
    ("a\udfffb", ValueError),
    ("\ufdfa" * 20, ValueError),  # 20 characters typed, 300 after NFKC and whitespace removal
    ("\uff11" * 257, ValueError),  # full-width digits: 257 ASCII digits after NFKC
    ("a" * 4097, ValueError),  # refused before normalising (see normalize_account)
]
GOOD_IDS = ["a", "a" * 256, "é" * 256, "\U0001f600" * 256, " ", "{x}", "a:b", "\x00"]
#: accepted as account ids: at most 256 characters once normalised (R7.1)
GOOD_ACCOUNTS = [
    "a",
    "a" * 256,
    "é" * 256,
    "e\u0301" * 256,  # 512 characters typed, 256 after NFKC
    "\U0001f600" * 256,
    "\uff11" * 256,
    " ".join("a" * 256),  # 511 characters typed, 256 without the spaces
    " a ",
    "{x}",
    "a:b",
]
#: the same id typed four ways (R7.1): spaced, plain, full-width, with Unicode spaces
SPACED = "185 077 512 3456"
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in ACCOUNT)  # U+FF11 ...
MIXED = "\uff11\uff18\uff15\u00a0\uff10\uff17\uff17\t512\u3000\uff13\uff14\uff15\uff16\n"
SPELLINGS = [SPACED, ACCOUNT, FULL_WIDTH, MIXED]


def word(name: str) -> str:
    """A regex that finds ``name`` as a word in an error message."""
    return rf"\b{name}\b"


def issue(codes, account: str = ACCOUNT) -> str:
    result = codes.request_code(account)
    assert isinstance(result, Issued), result
    return result.code


def trust(codes, account: str = ACCOUNT, fingerprint: str = FP) -> str:
    code = issue(codes, account)
    result = codes.verify_code(account, code, remember_device=True, fingerprint=fingerprint)
    assert isinstance(result, Verified), result
    assert isinstance(result.device_token, str)
    return result.device_token


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


class State:
    """A store with something in it: a trusted device, a code with one failure."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.codes = harness.codes()
        self.token = trust(self.codes)
        self.code = issue(self.codes)
        wrong_guess = self.codes.verify_code(ACCOUNT, wrong(self.code))
        assert wrong_guess == Refused(Reason.WRONG_CODE, attempts_left=2)
        self.before = harness.dump()

    def unchanged(self) -> None:
        """Nothing was stored, and the state still works as before."""
        assert self.harness.dump() == self.before
        assert self.codes.is_trusted_device(ACCOUNT, self.token, FP) is True
        assert self.codes.verify_code(ACCOUNT, wrong(self.code)) == Refused(
            Reason.WRONG_CODE, attempts_left=1
        )


@pytest.fixture
def state(harness: Harness) -> State:
    return State(harness)


# -- SecurityCodes: the account argument --------------------------------------------------------
ACCOUNT_CALLS: dict[str, Callable[[Any, Any, str], Any]] = {
    "request_code": lambda c, a, t: c.request_code(a),
    "verify_code": lambda c, a, t: c.verify_code(a, "123456"),
    "verify_code-remember": lambda c, a, t: c.verify_code(
        a, "123456", remember_device=True, fingerprint=FP
    ),
    "verify_code-malformed": lambda c, a, t: c.verify_code(a, "12"),
    "is_trusted_device": lambda c, a, t: c.is_trusted_device(a, t, FP),
    "is_trusted_device-no-token": lambda c, a, t: c.is_trusted_device(a, None, FP),
    "forget_device": lambda c, a, t: c.forget_device(a, t),
    "forget_all_devices": lambda c, a, t: c.forget_all_devices(a),
    "unlock": lambda c, a, t: c.unlock(a),
}


@pytest.mark.parametrize("call", list(ACCOUNT_CALLS))
def test_r7_bad_account_raises_naming_it_and_stores_nothing(state: State, call: str) -> None:
    """R7.1/R7.4 'Account identifiers are str ... An id that is empty after this, longer than
    256 characters, or holds a NUL or a lone surrogate raises ValueError.'"""
    for account, error in BAD_ACCOUNTS:
        with pytest.raises(error, match=word("account")):
            ACCOUNT_CALLS[call](state.codes, account, state.token)
    state.unchanged()


@pytest.mark.parametrize("account", GOOD_ACCOUNTS, ids=lambda a: f"{a[:3]!a}x{len(a)}")
def test_r7_account_of_1_to_256_characters_accepted(harness: Harness, account: str) -> None:
    """R7.1 'Account identifiers are str' (at most 256 characters once normalised)"""
    codes = harness.codes()
    token = trust(codes, account)
    assert codes.is_trusted_device(account, token, FP) is True
    codes.forget_device(account, token)
    codes.forget_all_devices(account)
    codes.unlock(account)
    code = issue(codes, account)
    assert codes.verify_code(account, code) == Verified()


def refused_everywhere(state: State, account: object, error: type[Exception]) -> None:
    """Every call that takes an account raises ``error`` naming it, and stores nothing."""
    for call in ACCOUNT_CALLS.values():
        with pytest.raises(error, match=word("account")):
            call(state.codes, account, state.token)
    assert state.harness.dump() == state.before


def normal_form(account: str) -> str:
    """R7.1 as written, independently of the library: NFKC, then every whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", account).split())


def account_records(harness: Harness) -> set[bytes]:
    """The record names of the accounts the store holds (memory: one line, Redis: one hash)."""
    dump = harness.dump()
    memory = re.findall(rb"account ([A-Za-z0-9_-]{16}) ", dump)
    redis_ = re.findall(rb"\{([A-Za-z0-9_-]{16})\}:s ", dump)
    return set(memory) | set(redis_)


def test_r7_1_account_not_a_str_raises_type_error(state: State) -> None:
    """R7.1 'Account identifiers are str.'"""
    for account in (None, 123, 1.5, b"1850775123456", ["1850775123456"], bytearray(b"18")):
        refused_everywhere(state, account, TypeError)
    state.unchanged()


def test_r7_1_spellings_of_one_id_are_one_account(harness: Harness) -> None:
    """R7.1 'so that "185 077 512 3456", "1850775123456" and the same digits typed full-width
    are one account': one window of 5 codes, not 5 per spelling."""
    codes = harness.codes()
    for n, spelling in enumerate([*SPELLINGS, SPACED]):
        result = codes.request_code(spelling)
        assert isinstance(result, Issued), (spelling, result)
        assert result.remaining == 4 - n
    for spelling in SPELLINGS:
        assert codes.request_code(spelling).reason is Reason.TOO_MANY_CODES
    code = issue(harness.codes(), "other-account")  # another account is not affected
    assert code.isdigit()


def test_r7_1_every_call_normalises_the_account(harness: Harness) -> None:
    """R7.1 'Before anything else they are normalised' (every call that takes an account)"""
    codes = harness.codes()
    code = issue(codes, SPACED)
    assert codes.verify_code(FULL_WIDTH, code) == Verified()
    token = trust(codes, SPELLINGS[3])
    for spelling in SPELLINGS:
        assert codes.is_trusted_device(spelling, token, FP) is True
    codes.forget_device(FULL_WIDTH, token)
    assert codes.is_trusted_device(ACCOUNT, token, FP) is False
    token = trust(codes, ACCOUNT)
    codes.forget_all_devices(SPACED)
    assert codes.is_trusted_device(ACCOUNT, token, FP) is False
    policy = Policy(max_failed_attempts=1)
    locking = harness.codes(policy=policy)
    code = issue(locking, FULL_WIDTH)
    assert locking.verify_code(SPACED, wrong(code)).reason is Reason.ACCOUNT_LOCKED
    assert locking.request_code(ACCOUNT).reason is Reason.ACCOUNT_LOCKED
    locking.unlock(SPELLINGS[3])
    assert isinstance(locking.request_code(ACCOUNT), Issued)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        pytest.param("e\u0301", "é", True, id="composed"),
        pytest.param("\u212b", "Å", True, id="angstrom-sign"),
        pytest.param("\ufb01le", "file", True, id="ligature"),
        pytest.param("x²", "x2", True, id="superscript"),
        pytest.param("a\u0308", "ä", True, id="combining-diaeresis"),
        pytest.param("a\u00a8", "a \u0308", True, id="spacing-diaeresis"),  # NFKC: space, mark
        # NFKC first: the space of U+00A8 is removed after composition, so no ä
        pytest.param("a\u00a8", "ä", False, id="nfkc-before-whitespace-removal"),
        pytest.param("a b", "ab", True, id="space"),
        pytest.param("Jean-Luc", "JEAN-LUC", False, id="case-kept"),
        pytest.param("straße", "strasse", False, id="no-case-folding"),
    ],
)
def test_r7_1_nfkc_then_whitespace_removed_case_kept(
    harness: Harness, first: str, second: str, same: bool
) -> None:
    """R7.1 'Unicode NFKC, then every whitespace character removed ... (case is kept: the
    service folds case itself if its ids need it)'"""
    codes = harness.codes()
    code = issue(codes, first)
    # the record is named by the normal form (read before the code is used: a used code
    # can leave its record empty, and an empty Redis hash is no key at all)
    assert (account_records(harness) == {codes._core.account(second).encode()}) is same
    expected = Verified() if same else Refused(Reason.NO_CODE)
    assert codes.verify_code(second, code) == expected


def test_r7_1_one_record_for_every_spelling(harness: Harness) -> None:
    """R7.1 (the normalised id is what names the record: one record in the store's dump)"""
    codes = harness.codes()
    for spelling in SPELLINGS:
        issue(codes, spelling)
    token = trust(codes, SPACED)
    assert codes.is_trusted_device(FULL_WIDTH, token, FP) is True
    assert account_records(harness) == {codes._core.account(ACCOUNT).encode()}


@pytest.mark.parametrize("account", ["", " ", "\t\n", WHITESPACE, "\u3000" * 300, "\u00a0"])
def test_r7_1_empty_after_normalisation_raises_value_error(state: State, account: str) -> None:
    """R7.1 'An id that is empty after this ... raises ValueError.'"""
    refused_everywhere(state, account, ValueError)
    state.unchanged()


@pytest.mark.parametrize(
    "account",
    ["a" * 257, "\uff11" * 257, "\ufdfa" * 20, "é" * 257, "e\u0301" * 257, "a " * 257],
    ids=["ascii", "full-width", "nfkc-expands", "composed", "decomposed", "spaced"],
)
def test_r7_1_longer_than_256_after_normalisation_raises_value_error(
    state: State, account: str
) -> None:
    """R7.1 'An id that is ... longer than 256 characters ... raises ValueError.'"""
    assert len(normal_form(account)) > 256
    refused_everywhere(state, account, ValueError)
    state.unchanged()


@pytest.mark.parametrize("account", ["\x00", "a\x00", "185077\x005123456", " \x00 "], ids=repr)
def test_r7_1_nul_raises_value_error(state: State, account: str) -> None:
    """R7.1 'An id that ... holds a NUL ... raises ValueError.'"""
    refused_everywhere(state, account, ValueError)
    state.unchanged()


@pytest.mark.parametrize(
    "account",
    ["\ud800", "a\udfffb", "\ud83d\ude00", "é\udc00", "a" * 255 + "\ud800"],
    ids=lambda a: f"{a[:3]!a}x{len(a)}",
)
def test_r7_1_lone_surrogate_raises_value_error(state: State, account: str) -> None:
    """R7.1 'An id that ... holds ... a lone surrogate raises ValueError.'"""
    refused_everywhere(state, account, ValueError)
    state.unchanged()


def test_r7_1_raw_input_over_4096_characters_refused_without_normalising(state: State) -> None:
    """R7.1 (bounded work): a typed id over 4096 characters cannot be valid unless it holds
    over 3072 whitespace characters; it is refused as too long, without being normalised."""
    for account in ("a" * 4097, " " * 4096 + "a", "e\u0301" * 2049, "\u3000" * 5000 + "a"):
        refused_everywhere(state, account, ValueError)
    with pytest.raises(ValueError, match="4096"):
        state.codes.request_code(" " * 4096 + "a")
    huge = "e\u0301" * 5_000_000  # 10 M characters: NFKC alone would take ~0.3 s a call
    started = time.perf_counter()
    for _ in range(5):
        with pytest.raises(ValueError, match=word("account")):
            state.codes.request_code(huge)
    assert time.perf_counter() - started < 0.25
    state.unchanged()


def test_r7_1_every_id_that_can_be_valid_within_4096_characters_is_judged(
    harness: Harness,
) -> None:
    """R7.1 (bounded work): the longest typed form of a 256-character id (256 characters of
    4 code points each, decomposed) with 3072 whitespace characters around it is accepted."""
    longest = "\u03b1\u0313\u0300\u0345" * 256  # NFKC: U+1F82 (the longest decomposition)
    assert len(normal_form(longest)) == 256
    account = longest + "\u3000" * 3072
    assert len(account) == 4096
    codes = harness.codes()
    code = issue(codes, account)
    assert codes.verify_code("\u1f82" * 256, code) == Verified()
    with pytest.raises(ValueError, match=word("account")):
        codes.request_code(account + " ")


def test_r7_1_docs_say_so() -> None:
    """R7.1 'The docs say so.' (docs/rules.md, R7: what is normalised, what is refused)"""
    text = (Path(__file__).parents[1] / "docs" / "rules.md").read_text("utf-8")
    section = text.split("### Bad input (R7)", 1)[1].split("\n## ", 1)[0]
    for needle in ("NFKC", "whitespace", "case", "256", "NUL", "surrogate", "4096", "3072"):
        assert needle in section, needle
    for needle in ("64", "1024", "MALFORMED_CODE"):
        assert needle in section, needle


def variant(base: str) -> st.SearchStrategy[str]:
    """Another spelling of ``base``: a normal form or full-width ASCII, whitespace sprinkled in."""
    forms = st.sampled_from(["none", "NFC", "NFD", "NFKC", "NFKD", "full-width"])

    def spell(form: str, gaps: list[tuple[int, str]]) -> str:
        if form == "full-width":
            text = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in base)
        elif form == "none":
            text = base
        else:
            text = unicodedata.normalize(form, base)  # type: ignore[arg-type]
        for at, spaces in sorted(gaps, reverse=True):
            text = text[:at] + spaces + text[at:]
        return text

    gaps = st.lists(
        st.tuples(st.integers(0, 4 * len(base)), st.text(WHITESPACE, min_size=1, max_size=3)),
        max_size=4,
    )
    return st.builds(spell, forms, gaps)


ID_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)


def test_r7_1_property_same_normal_form_same_account(harness: Harness) -> None:
    """R7.1: any two strings with the same NFKC-then-whitespace-removed form are one account
    (a code issued under one verifies under the other), and two with different forms are not."""

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        base = data.draw(st.one_of(ID_TEXT, st.sampled_from(SPELLINGS)), label="base")
        first = data.draw(variant(base), label="first")
        second = data.draw(st.one_of(variant(base), ID_TEXT), label="second")
        forms = normal_form(first), normal_form(second)
        for form in forms:
            assume(0 < len(form) <= 256)
        codes = harness.fresh().codes()  # a fresh store: a window per example
        code = issue(codes, first)
        same = forms[0] == forms[1]
        assert codes.verify_code(second, code) == (Verified() if same else Refused(Reason.NO_CODE))

    check()


# -- SecurityCodes.verify_code: code, remember_device, fingerprint ------------------------------
@pytest.mark.parametrize(
    "code",
    [None, 123456, 12.0, b"123456", ["1", "2"], bytearray(b"123456")],
    ids=lambda c: type(c).__name__,
)
def test_r7_2_code_not_a_str_raises_type_error(state: State, code: object) -> None:
    """R7.2 'A code input is a str' (R7.4: anything else raises TypeError naming it)"""
    with pytest.raises(TypeError, match=word("code")):
        state.codes.verify_code(ACCOUNT, code)
    state.unchanged()


@pytest.mark.parametrize("code", ["", "1" * 257, "1" * 100_000], ids=["empty", "257", "100000"])
def test_r7_empty_or_oversized_code_is_malformed_and_stores_nothing(
    state: State, code: str
) -> None:
    """R7 'a code input is a str' (any str: R2.1 makes a wrong length MALFORMED_CODE)"""
    assert state.codes.verify_code(ACCOUNT, code) == Refused(Reason.MALFORMED_CODE)
    state.unchanged()


class Untouchable(str):
    """A str that fails the test when anything but its length is looked at."""

    def _read(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("the code input was read")

    translate = replace = strip = split = encode = _read
    isdigit = isdecimal = isnumeric = isascii = isspace = _read
    __iter__ = __getitem__ = __contains__ = _read


def test_r7_2_code_over_64_characters_is_malformed_without_further_work(state: State) -> None:
    """R7.2 'one longer than 64 characters is MALFORMED_CODE without further work'"""
    codes = state.codes
    assert codes.verify_code(ACCOUNT, " " * 59 + state.code) == Refused(Reason.MALFORMED_CODE)
    assert codes.verify_code(ACCOUNT, Untouchable("1" * 65)) == Refused(Reason.MALFORMED_CODE)
    huge = "1" * 10_000_000  # dropping separators from it alone took ~5 ms a call
    started = time.perf_counter()
    for _ in range(100):
        assert codes.verify_code(ACCOUNT, huge) == Refused(Reason.MALFORMED_CODE)
    assert time.perf_counter() - started < 0.25
    state.unchanged()  # not a guess
    # 64 characters are still read as R2.1 says
    assert codes.verify_code(ACCOUNT, "-" * 58 + state.code) == Verified()


@pytest.mark.parametrize(
    "spell",
    [
        lambda code: "".join(chr(ord(c) + 0xFEE0) for c in code),  # full-width digits
        lambda code: "".join(chr(ord(c) - ord("0") + 0x0660) for c in code),  # Arabic-Indic
        lambda code: code[:3] + "\u00a0" + code[3:],  # no-break space
        lambda code: code[:3] + "\u3000" + code[3:],  # ideographic space
        lambda code: code[:3] + "\n" + code[3:],  # only spaces, tabs and '-' are dropped
        lambda code: code[:3] + "\u2010" + code[3:],  # Unicode hyphen
    ],
    ids=["full-width", "arabic-indic", "nbsp", "ideographic-space", "newline", "hyphen"],
)
def test_r7_2_codes_are_not_normalised(state: State, spell: Callable[[str], str]) -> None:
    """R7.2 '(R2.1 then applies as written: only ASCII digits, no Unicode normalisation of
    codes)': NFKC would make these the right code; they are malformed, and not a guess."""
    typed = spell(state.code)
    assert unicodedata.normalize("NFKC", typed).replace(" ", "") in (state.code, typed)
    assert state.codes.verify_code(ACCOUNT, typed) == Refused(Reason.MALFORMED_CODE)
    state.unchanged()


@pytest.mark.parametrize("remember", ["yes", None, [], 1.0], ids=repr)
def test_r7_remember_device_not_a_bool_raises_naming_it(state: State, remember: object) -> None:
    """R7 'Anything else raises ... with a message that names the argument' (remember_device)"""
    with pytest.raises(TypeError, match=word("remember_device")):
        state.codes.verify_code(ACCOUNT, state.code, remember_device=remember, fingerprint=FP)
    state.unchanged()


@pytest.mark.parametrize("remember", [True, False])
@pytest.mark.parametrize(
    ("fingerprint", "error"),
    [
        pytest.param(123, TypeError, id="int"),
        pytest.param(b"fp", TypeError, id="bytes"),
        pytest.param(["fp"], TypeError, id="list"),
        pytest.param("", ValueError, id="empty"),
        pytest.param("f" * 1025, ValueError, id="1025"),
    ],
)
def test_r7_bad_fingerprint_in_verify_raises_naming_it(
    state: State, remember: bool, fingerprint: object, error: type[Exception]
) -> None:
    """R7.3 'Fingerprints are non-empty str of at most 1024 characters.' (R7.4: else raises)"""
    for code in (state.code, wrong(state.code), "12"):
        with pytest.raises(error, match=word("fingerprint")):
            state.codes.verify_code(
                ACCOUNT, code, remember_device=remember, fingerprint=fingerprint
            )
    state.unchanged()


def test_r7_missing_fingerprint_with_remember_device_raises_naming_it(state: State) -> None:
    """R3.1/R7 'remember_device=True without a non-empty fingerprint raises ValueError'"""
    with pytest.raises(ValueError, match=word("fingerprint")):
        state.codes.verify_code(ACCOUNT, state.code, remember_device=True)
    state.unchanged()


@pytest.mark.parametrize(
    ("fingerprint", "error"),
    [
        pytest.param(None, TypeError, id="None"),
        pytest.param(123, TypeError, id="int"),
        pytest.param(b"fp", TypeError, id="bytes"),
        pytest.param("", ValueError, id="empty"),
        pytest.param("f" * 1025, ValueError, id="1025"),
    ],
)
def test_r7_bad_fingerprint_in_is_trusted_device_raises_naming_it(
    state: State, fingerprint: object, error: type[Exception]
) -> None:
    """R7.3 'Fingerprints are non-empty str of at most 1024 characters.' (R7.4: else raises)"""
    for token in (state.token, None, "garbage"):
        with pytest.raises(error, match=word("fingerprint")):
            state.codes.is_trusted_device(ACCOUNT, token, fingerprint)
    state.unchanged()


def fingerprint_calls(state: State, fingerprint: object) -> list[Callable[[], Any]]:
    """Every call that takes a fingerprint, with it."""
    codes, code = state.codes, state.code
    return [
        lambda: codes.verify_code(ACCOUNT, code, remember_device=True, fingerprint=fingerprint),
        lambda: codes.verify_code(ACCOUNT, code, fingerprint=fingerprint),
        lambda: codes.verify_code(ACCOUNT, wrong(code), fingerprint=fingerprint),
        lambda: codes.verify_code(ACCOUNT, "12", remember_device=True, fingerprint=fingerprint),
        lambda: codes.is_trusted_device(ACCOUNT, state.token, fingerprint),
        lambda: codes.is_trusted_device(ACCOUNT, None, fingerprint),
    ]


def test_r7_3_fingerprint_not_a_str_raises_type_error(state: State) -> None:
    """R7.3 'Fingerprints are ... str'"""
    for fingerprint in (123, 1.5, b"fp", ["fp"], bytearray(b"fp")):
        for call in fingerprint_calls(state, fingerprint):
            with pytest.raises(TypeError, match=word("fingerprint")):
                call()
    state.unchanged()


def test_r7_3_empty_fingerprint_raises_value_error(state: State) -> None:
    """R7.3 'Fingerprints are non-empty'"""
    for call in fingerprint_calls(state, ""):
        with pytest.raises(ValueError, match=word("fingerprint")):
            call()
    state.unchanged()


def test_r7_3_fingerprint_over_1024_characters_raises_before_anything_is_read(
    state: State,
) -> None:
    """R7.3 'Fingerprints are ... of at most 1024 characters' (R7.4: before anything is read)"""
    for fingerprint in ("f" * 1025, "\U0001f600" * 1025, "f" * 10_000_000):
        for call in fingerprint_calls(state, fingerprint):
            with pytest.raises(ValueError, match=word("fingerprint")):
                call()
    state.unchanged()


def test_r7_3_fingerprint_of_1_to_1024_characters_accepted(harness: Harness) -> None:
    """R7.3 'Fingerprints are non-empty str of at most 1024 characters.' (the edges)"""
    codes = harness.codes()
    for fingerprint in ("f", "f" * 1024, "\U0001f600" * 1024, " ", "\x00"):
        token = trust(codes, fingerprint=fingerprint)
        assert codes.is_trusted_device(ACCOUNT, token, fingerprint) is True
        assert codes.is_trusted_device(ACCOUNT, token, OTHER_FP) is False
    fingerprint = "f" * 1024
    token = trust(codes, fingerprint=fingerprint)
    assert codes.is_trusted_device(ACCOUNT, token, fingerprint[:-1]) is False
    with pytest.raises(ValueError, match=word("fingerprint")):
        codes.is_trusted_device(ACCOUNT, token, fingerprint + "f")


def test_r7_3_fingerprint_is_not_normalised(harness: Harness) -> None:
    """R7.3 'Fingerprints are non-empty str' (any str, compared exactly: a lone surrogate too)"""
    codes = harness.codes()
    for fingerprint, other in (("\udc00", "\udc01"), ("e\u0301", "é"), ("a b", "ab")):
        token = trust(codes, fingerprint=fingerprint)
        assert codes.is_trusted_device(ACCOUNT, token, fingerprint) is True
        assert codes.is_trusted_device(ACCOUNT, token, other) is False


# -- SecurityCodes: the constructor -------------------------------------------------------------
@pytest.mark.parametrize(
    ("secret", "error", "name"),
    [
        pytest.param(None, TypeError, "secret", id="None"),
        pytest.param(123, TypeError, "secret", id="int"),
        pytest.param({SECRET: 1}, TypeError, "secret", id="dict"),
        pytest.param(b"", ValueError, "secret", id="empty-bytes"),
        pytest.param("", ValueError, "secret", id="empty-str"),
        pytest.param(b"x" * 31, ValueError, "secret", id="31-bytes"),
        pytest.param([], ValueError, "secret", id="empty-list"),
        pytest.param([SECRET, 5], TypeError, "secret", id="list-int"),
        pytest.param([SECRET, None], TypeError, "secret", id="list-None"),
        pytest.param([SECRET, b"short"], ValueError, "secret", id="list-short"),
        pytest.param(bytearray(SECRET), TypeError, "secret", id="bytearray"),
    ],
)
def test_r7_bad_secret_raises_naming_it(
    harness: Harness, secret: object, error: type[Exception], name: str
) -> None:
    """R4.1/R7 'secret is required: bytes or str, at least 32 bytes'"""
    with pytest.raises(error, match=word(name)):
        harness.codes(secret=secret)
    if secret is not None:  # the limiter's secret is optional: None means plain keys
        with pytest.raises(error, match=word(name)):
            harness.limiter(secret=secret)
    assert harness.dump() == b""


@pytest.mark.parametrize("policy", ["default", {}, 5, timedelta(minutes=15)], ids=repr)
def test_r7_bad_policy_raises_naming_it(harness: Harness, policy: object) -> None:
    """R7 'Anything else raises ... names the argument' (policy)"""
    with pytest.raises(TypeError, match=word("policy")):
        harness.codes(policy=policy)


@pytest.mark.parametrize("clock", [5, "now", 1.5], ids=repr)
def test_r7_clock_not_callable_raises_naming_it(harness: Harness, clock: object) -> None:
    """R5.1/R7 'clock= a callable returning seconds since the epoch'"""
    with pytest.raises(TypeError, match=word("clock")):
        harness.codes(clock=clock)
    with pytest.raises(TypeError, match=word("clock")):
        SlidingWindowLimiter(MemoryBackend(), limit=1, window=timedelta(hours=1), clock=clock)


@pytest.mark.parametrize(
    ("reading", "error"),
    [
        pytest.param("now", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(float("nan"), ValueError, id="nan"),
        pytest.param(float("inf"), ValueError, id="inf"),
    ],
)
def test_r7_clock_returning_garbage_raises_before_storing(
    harness: Harness, reading: object, error: type[Exception]
) -> None:
    """R5.1/R7 'a callable returning seconds since the epoch' (else: raise, nothing stored)"""
    codes = harness.codes(clock=lambda: reading)
    with pytest.raises(error, match=word("clock")):
        codes.request_code(ACCOUNT)
    with pytest.raises(error, match=word("clock")):
        codes.verify_code(ACCOUNT, "123456")
    assert harness.dump() == b""
    store = MemoryBackend()  # the harness builds limiters on its own clock only
    limiter = SlidingWindowLimiter(store, limit=1, window=timedelta(hours=1), clock=lambda: reading)
    with pytest.raises(error, match=word("clock")):
        limiter.hit("k")
    assert store.dump() == ""


@pytest.mark.parametrize(
    ("cls", "backend"),
    [
        pytest.param(SecurityCodes, None, id="sync-None"),
        pytest.param(SecurityCodes, object(), id="sync-object"),
        pytest.param(SecurityCodes, "memory", id="sync-str"),
        pytest.param(SecurityCodes, AsyncMemoryBackend(), id="sync-async-store"),
        pytest.param(AsyncSecurityCodes, MemoryBackend(), id="async-sync-store"),
        pytest.param(AsyncSecurityCodes, None, id="async-None"),
    ],
)
def test_r7_bad_backend_raises_naming_it(cls: Any, backend: object) -> None:
    """API '`backend` is positional' and must be a store of the right face"""
    with pytest.raises(TypeError, match=word("backend")):
        cls(backend, secret=SECRET)


def test_r7_constructor_arguments_keyword_only() -> None:
    """API '`backend` is positional; every other constructor argument is keyword-only.'"""
    with pytest.raises(TypeError):
        SecurityCodes(MemoryBackend(), SECRET)  # type: ignore[misc]
    with pytest.raises(TypeError):
        SlidingWindowLimiter(MemoryBackend(), 5, timedelta(hours=1))  # type: ignore[misc]


# -- SlidingWindowLimiter -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "error"),
    [
        pytest.param(0, ValueError, id="0"),
        pytest.param(-1, ValueError, id="-1"),
        pytest.param(True, TypeError, id="True"),
        pytest.param(5.0, TypeError, id="float"),
        pytest.param("5", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
    ],
)
def test_r7_limiter_bad_limit_raises_naming_it(
    harness: Harness, limit: object, error: type[Exception]
) -> None:
    """R7 'counts are int (not bool) and positive' (limit)"""
    with pytest.raises(error, match=word("limit")):
        harness.limiter(limit=limit)
    assert harness.dump() == b""


@pytest.mark.parametrize(
    ("window", "error"),
    [
        pytest.param(3600, TypeError, id="int"),
        pytest.param(3600.0, TypeError, id="float"),
        pytest.param("1h", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(timedelta(0), ValueError, id="zero"),
        pytest.param(timedelta(seconds=-1), ValueError, id="negative"),
    ],
)
def test_r7_limiter_bad_window_raises_naming_it(
    harness: Harness, window: object, error: type[Exception]
) -> None:
    """R7 'durations are timedelta and positive' (window)"""
    with pytest.raises(error, match=word("window")):
        harness.limiter(window=window)
    assert harness.dump() == b""


@pytest.mark.parametrize("namespace", ["", None, 123, b"ip"], ids=repr)
def test_r7_limiter_bad_namespace_raises_naming_it(harness: Harness, namespace: object) -> None:
    """R7 'Anything else raises ... names the argument' (namespace)"""
    with pytest.raises((TypeError, ValueError), match=word("namespace")):
        harness.limiter(namespace=namespace)
    assert harness.dump() == b""


@pytest.mark.parametrize(
    ("cls", "backend"),
    [
        pytest.param(SlidingWindowLimiter, None, id="sync-None"),
        pytest.param(SlidingWindowLimiter, object(), id="sync-object"),
        pytest.param(SlidingWindowLimiter, AsyncMemoryBackend(), id="sync-async-store"),
        pytest.param(AsyncSlidingWindowLimiter, MemoryBackend(), id="async-sync-store"),
    ],
)
def test_r7_limiter_bad_backend_raises_naming_it(cls: Any, backend: object) -> None:
    """API 'SlidingWindowLimiter(backend, ...)': a store of the right face"""
    with pytest.raises(TypeError, match=word("backend")):
        cls(backend, limit=5, window=timedelta(hours=1))


LIMITER_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "hit": lambda lim, k: lim.hit(k),
    "peek": lambda lim, k: lim.peek(k),
    "release": lambda lim, k: lim.release(k, "0.0"),
    "release-None": lambda lim, k: lim.release(k, None),
    "reset": lambda lim, k: lim.reset(k),
}


@pytest.mark.parametrize("secret", [None, SECRET], ids=["plain", "hashed"])
@pytest.mark.parametrize("call", list(LIMITER_CALLS))
def test_r7_limiter_bad_key_raises_naming_it_and_stores_nothing(
    harness: Harness, secret: bytes | None, call: str
) -> None:
    """R7 (limiter keys, like account identifiers: non-empty str of at most 256 characters)"""
    limiter = harness.limiter(limit=3, secret=secret)
    limiter.hit("k")
    before = harness.dump()
    for key, error in BAD_IDS:
        with pytest.raises(error, match=word("key")):
            LIMITER_CALLS[call](limiter, key)
    assert harness.dump() == before
    assert limiter.peek("k").remaining == 2


@pytest.mark.parametrize("key", GOOD_IDS, ids=lambda a: f"{a[:3]!a}x{len(a)}")
def test_r7_limiter_key_of_1_to_256_characters_accepted(harness: Harness, key: str) -> None:
    """R7 (limiter keys: non-empty str of at most 256 characters)"""
    for secret in (None, SECRET):
        limiter = harness.limiter(limit=2, secret=secret, namespace=f"ns-{secret is None}")
        d = limiter.hit(key)
        assert (d.allowed, d.remaining) == (True, 1)
        assert limiter.peek(key).remaining == 1
        limiter.release(key, d.entry)
        assert limiter.peek(key).remaining == 2
        limiter.hit(key)
        limiter.reset(key)
        assert limiter.peek(key).remaining == 2


@pytest.mark.parametrize("secret", [None, SECRET], ids=["plain", "hashed"])
def test_r7_limiter_key_any_str_works_or_raises_naming_it(
    harness: Harness, secret: bytes | None
) -> None:
    """R7 'Anything else raises ... with a message that names the argument' (a lone surrogate)"""
    limiter = harness.limiter(limit=1, secret=secret)
    for key in ("\ud800", "a\udfffb"):
        error: Exception | None = None
        try:
            decision = limiter.hit(key)
        except (TypeError, ValueError) as exc:
            error = exc
        if error is not None:  # refused: the message must name the argument
            assert re.search(word("key"), str(error)), f"{key!r}: {error!r}"
            assert harness.dump() == b""
        else:  # accepted: it works like any other key
            assert decision.allowed is True
            assert limiter.hit(key).allowed is False


def test_r7_account_with_lone_surrogate_refused(state: State) -> None:
    """R7.1 'An id that ... holds ... a lone surrogate raises ValueError.' (limiter keys,
    which are not account ids, may hold one: see the test above)"""
    for account in ("\ud800", "a\udfffb"):
        refused_everywhere(state, account, ValueError)
    state.unchanged()


@pytest.mark.parametrize("entry", [123, b"0.0", ["0.0"], 1.5], ids=repr)
def test_r7_limiter_bad_entry_raises_naming_it(harness: Harness, entry: object) -> None:
    """R7 'Anything else raises ... names the argument' (release's entry: str or None)"""
    limiter = harness.limiter(limit=3)
    limiter.hit("k")
    before = harness.dump()
    with pytest.raises(TypeError, match=word("entry")):
        limiter.release("k", entry)
    assert harness.dump() == before


# -- Policy -------------------------------------------------------------------------------------
DURATIONS = ["code_ttl", "code_window", "lockout", "device_trust_ttl"]
COUNTS = ["max_unused_codes", "max_attempts_per_code", "max_failed_attempts", "code_length"]


@pytest.mark.parametrize("field", DURATIONS)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(900, TypeError, id="int"),
        pytest.param(900.0, TypeError, id="float"),
        pytest.param("15m", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(timedelta(0), ValueError, id="zero"),
        pytest.param(timedelta(seconds=-1), ValueError, id="negative"),
        pytest.param(timedelta(days=-400), ValueError, id="very-negative"),
    ],
)
def test_r7_5_policy_duration_must_be_positive_timedelta(
    field: str, value: object, error: type[Exception]
) -> None:
    """R7 'A Policy is validated when built: durations are timedelta and positive'"""
    with pytest.raises(error, match=word(field)):
        Policy(**{field: value})


@pytest.mark.parametrize("field", COUNTS)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(True, TypeError, id="True"),
        pytest.param(False, TypeError, id="False"),
        pytest.param(5.0, TypeError, id="float"),
        pytest.param("5", TypeError, id="str"),
        pytest.param(None, TypeError, id="None"),
        pytest.param([5], TypeError, id="list"),
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-1, ValueError, id="negative"),
    ],
)
def test_r7_5_policy_count_must_be_positive_int_not_bool(
    field: str, value: object, error: type[Exception]
) -> None:
    """R7 'counts are int (not bool) and positive'"""
    with pytest.raises(error, match=word(field)):
        Policy(**{field: value})


@pytest.mark.parametrize("length", [0, 1, 3, 13, 20, 100])
def test_r7_5_policy_code_length_within_4_to_12(length: int) -> None:
    """R7 'code_length is within 4..12'"""
    with pytest.raises(ValueError, match=word("code_length")):
        Policy(code_length=length)


@pytest.mark.parametrize("length", [4, 5, 6, 11, 12])
def test_r7_5_policy_code_length_edges_accepted(length: int) -> None:
    """R7 'code_length is within 4..12'"""
    assert Policy(code_length=length).code_length == length


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code_ttl": timedelta(hours=1, milliseconds=1)},
        {"code_ttl": timedelta(hours=2)},
        {"code_window": timedelta(minutes=14)},
        {"code_ttl": timedelta(minutes=10), "code_window": timedelta(minutes=9)},
    ],
    ids=repr,
)
def test_r7_5_policy_code_ttl_at_most_code_window(kwargs: dict[str, timedelta]) -> None:
    """R7 'and code_ttl <= code_window.'"""
    with pytest.raises(ValueError, match=word("code_ttl")):
        Policy(**kwargs)


def test_r7_5_policy_code_ttl_equal_to_code_window_accepted() -> None:
    """R7 'code_ttl <= code_window' (equal is fine)"""
    policy = Policy(code_ttl=timedelta(minutes=30), code_window=timedelta(minutes=30))
    assert policy.code_ttl == policy.code_window


def test_r7_5_policy_defaults_are_those_of_the_rules() -> None:
    """API 'Policy(...)': the defaults of RULES.md"""
    assert Policy() == Policy(
        code_ttl=timedelta(minutes=15),
        code_window=timedelta(hours=1),
        max_unused_codes=5,
        max_attempts_per_code=3,
        max_failed_attempts=10,
        lockout=timedelta(hours=24),
        code_length=6,
        device_trust_ttl=timedelta(days=183),
    )


def test_r7_5_policy_is_frozen() -> None:
    """API 'Frozen, validated when built'"""
    policy = Policy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.code_ttl = timedelta(0)  # type: ignore[misc]
    assert policy.code_ttl == timedelta(minutes=15)


# -- the stores' constructors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_records", "error"),
    [
        pytest.param(0, ValueError, id="0"),
        pytest.param(-1, ValueError, id="-1"),
        pytest.param("10", TypeError, id="str"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
@pytest.mark.parametrize("cls", [MemoryBackend, AsyncMemoryBackend])
def test_r7_memory_backend_bad_max_records(
    cls: Any, max_records: object, error: type[Exception]
) -> None:
    """R7 'counts are int (not bool) and positive' (MemoryBackend(max_records=...))"""
    with pytest.raises(error, match=word("max_records")):
        cls(max_records=max_records)


def test_r7_memory_backend_max_records_accepted() -> None:
    """API 'MemoryBackend()': max_records is optional, a positive int"""
    assert len(MemoryBackend()) == 0
    assert len(MemoryBackend(max_records=None)) == 0
    assert len(MemoryBackend(max_records=1)) == 0
    with pytest.raises(TypeError):
        MemoryBackend(10)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        pytest.param("", ValueError, id="empty"),
        pytest.param("{x}", ValueError, id="braces"),
        pytest.param(5, TypeError, id="int"),
        pytest.param(None, TypeError, id="None"),
    ],
)
def test_r7_redis_backend_bad_prefix(prefix: object, error: type[Exception]) -> None:
    """API 'RedisBackend(client, prefix=\"ameli-otp\")': a bad prefix raises naming it"""
    client = redis.Redis(port=1)  # never connected: redis-py connects on the first command
    try:
        with pytest.raises(error, match=word("prefix")):
            RedisBackend(client, prefix=prefix)
    finally:
        client.close()


def test_r7_redis_backend_bad_client() -> None:
    """API 'client is a redis.Redis or a redis.cluster.RedisCluster'"""
    with pytest.raises(TypeError, match=word("client")):
        RedisBackend(object())
    with pytest.raises(TypeError, match=word("client")):
        RedisBackend(MemoryBackend())
    client = redis.Redis(port=1)
    try:
        with pytest.raises(TypeError, match=word("client")):
            AsyncRedisBackend(client)
    finally:
        client.close()


# -- fuzzing device tokens (R3.2, R3.3, R4.3) ---------------------------------------------------
#: valid account ids (R7.1) that are not ACCOUNT however it is spelled
OTHER_ACCOUNTS = st.text(min_size=1, max_size=256).filter(
    lambda a: 0 < len(normal_form(a)) <= 256 and "\x00" not in a and normal_form(a) != ACCOUNT
)


def token_like(token: str) -> st.SearchStrategy[str]:
    """Strings that are not ``token``: garbage, and look-alikes of the right length and alphabet."""
    length = len(token)
    return st.one_of(
        st.binary(max_size=2 * length).map(lambda b: b.decode("latin-1")),
        st.text(max_size=2 * length),
        st.text(alphabet=TOKEN_ALPHABET, min_size=length, max_size=length),
        st.text(alphabet=TOKEN_ALPHABET, min_size=length - 2, max_size=length + 2),
        st.integers(0, length - 1).flatmap(
            lambda i: st.text(
                alphabet=TOKEN_ALPHABET, min_size=length - i, max_size=length - i
            ).map(lambda tail: token[:i] + tail)
        ),
    ).filter(lambda t: t != token)


def test_r3_2_fuzz_is_trusted_device_never_raises_never_true(harness: Harness) -> None:
    """R3.2 'altered, truncated or garbage token, or a token that is not a str at all ...: False,
    never an exception.'"""
    codes = harness.codes()
    token = trust(codes)
    before = harness.dump()

    @FUZZ
    @given(
        candidate=st.one_of(
            token_like(token),
            st.none(),
            st.integers(),
            st.binary(),
            st.floats(),
            st.lists(st.text(max_size=3), max_size=3),
        ),
        fingerprint=st.sampled_from([FP, OTHER_FP]),
    )
    def check(candidate: object, fingerprint: str) -> None:
        assert codes.is_trusted_device(ACCOUNT, candidate, fingerprint) is False

    check()
    assert harness.dump() == before
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True


def test_r3_2_fuzz_other_accounts_and_fingerprints_never_trusted(harness: Harness) -> None:
    """R3.2 'Another browser (another fingerprint), another account ...: False'"""
    codes = harness.codes()
    token = trust(codes)

    @FUZZ
    @given(
        account=OTHER_ACCOUNTS,
        fingerprint=st.text(min_size=1, max_size=100),
    )
    def check(account: str, fingerprint: str) -> None:
        assert codes.is_trusted_device(account, token, fingerprint) is False
        if fingerprint != FP:
            assert codes.is_trusted_device(ACCOUNT, token, fingerprint) is False

    check()
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True


def test_r3_3_fuzz_forget_device_never_raises_never_revokes(harness: Harness) -> None:
    """R3.3 'forget_device(account, token) revokes that token only if it belongs to that account'"""

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        store = harness.fresh()  # a revocation must not leak into the next example
        codes = store.codes()
        token = trust(codes)
        candidate = data.draw(st.one_of(token_like(token), st.none()), label="candidate")
        codes.forget_device(ACCOUNT, candidate)
        assert codes.is_trusted_device(ACCOUNT, token, FP) is True

    check()


def test_r3_3_fuzz_forget_device_of_another_account_never_revokes(harness: Harness) -> None:
    """R3.3 'revokes that token only if it belongs to that account'"""
    codes = harness.codes()
    token = trust(codes)

    @FUZZ
    @given(account=OTHER_ACCOUNTS)
    def check(account: str) -> None:
        codes.forget_device(account, token)

    check()
    assert codes.is_trusted_device(ACCOUNT, token, FP) is True


def test_r2_1_fuzz_code_input_never_raises(harness: Harness) -> None:
    """R7.2 'A code input is a str': any str gives a result, never an exception; over 64
    characters it is MALFORMED_CODE (R2.1 applies to the others as written)."""
    codes = harness.codes(policy=Policy(max_attempts_per_code=10**6, max_failed_attempts=10**6))
    code = issue(codes)

    padded = st.builds(  # the wrong code with separators around it: 64 characters at most
        lambda before, after: before + wrong(code) + after,
        st.text(" \t-", max_size=40),
        st.text(" \t-", max_size=40),
    )

    @FUZZ
    @given(typed=st.one_of(st.text(max_size=80), padded))
    def check(typed: str) -> None:
        result = codes.verify_code(ACCOUNT, typed)
        digits = typed.replace(" ", "").replace("\t", "").replace("-", "")
        well_formed = (
            len(typed) <= 64 and len(digits) == 6 and digits.isascii() and digits.isdigit()
        )
        if not well_formed:
            assert result == Refused(Reason.MALFORMED_CODE)
        elif digits == code:
            assert result == Verified()
        else:
            assert result.reason in (Reason.WRONG_CODE, Reason.NO_CODE)

    check()
