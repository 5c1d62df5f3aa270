"""RULES.md R4.2: a dump of the store reveals no code, account identifier or fingerprint.

A scenario exercises every kind of record (codes issued, used, replaced and
burned, trusted devices, failure counts, a lock, a limiter with a secret), then
``harness.dump()`` (every key and value the store holds, as bytes) is searched
for each secret in clear and in its common encodings (UTF-8, hex, base64).
A limiter without a secret does store its keys in clear, as documented: that
test shows the search finds what is there.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest

from ameli_otp import Issued, Policy, Reason, Refused, Verified
from ameli_otp.testing import FakeClock
from tests.harness import SECRET, Harness

ACCOUNTS = [
    "1850775123456",  # a French social security number (NIR)
    "2991299654321",
    "zoë.ψ-ameli@example.fr",  # not ASCII
    "locked-3850775123456",
]
FINGERPRINTS = [
    "Mozilla/5.0 (X11; Linux x86_64) fp=9f8e7d6c",
    "fp-Chrome-131-Windows-2560x1440-Europe/Paris",
    "empreinte-navigateur-é",
]
LIMITER_KEYS = ["203.0.113.42", "+33612345678", "2001:db8::17"]


def encodings(clear: str) -> list[bytes]:
    """``clear`` as it could sit in a store: raw UTF-8, hex of it, base64 of it (no repeats)."""
    raw = clear.encode("utf-8")
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms += [encode(raw), encode(raw).rstrip(b"=")]
    return list(dict.fromkeys(forms))


def found(dump: bytes, clear: str, *, bounded: bool = False) -> list[bytes]:
    """The encodings of ``clear`` that appear in ``dump``.

    ``bounded``: the raw form only counts when no digit or letter touches it. A
    6-digit code is short enough to show up by chance inside a 13-digit timestamp
    or a hex hash; a code stored in clear always sits between delimiters.
    """
    hits = []
    for form in encodings(clear):
        if bounded and form == clear.encode("utf-8"):
            pattern = rb"(?<![0-9A-Za-z])" + re.escape(form) + rb"(?![0-9A-Za-z])"
            if re.search(pattern, dump):
                hits.append(form)
        elif form in dump:
            hits.append(form)
    return hits


def wrong(code: str) -> str:
    n = len(code)
    return f"{(int(code) + 1) % 10**n:0{n}d}"


def scenario(harness: Harness, clock: FakeClock, policy: Policy) -> list[str]:
    """Use every kind of record the library keeps; return every code issued."""
    codes = harness.codes(policy=policy)
    issued: list[str] = []

    def issue(account: str) -> str:
        result = codes.request_code(account)
        assert isinstance(result, Issued), result
        issued.append(result.code)
        return result.code

    first, second, third, locked = ACCOUNTS
    # trusted devices, one per fingerprint, a code replaced before the last one
    issue(first)
    for fingerprint in FINGERPRINTS:
        code = issue(first)
        result = codes.verify_code(first, code, remember_device=True, fingerprint=fingerprint)
        assert isinstance(result, Verified)
        assert result.device_token is not None
        assert codes.is_trusted_device(first, result.device_token, fingerprint) is True
        clock.advance(minutes=1)
    pending = issue(first)  # a code in flight, with one failure on it
    assert codes.verify_code(first, wrong(pending)).reason is Reason.WRONG_CODE
    # a burned code and failures on the account
    code = issue(second)
    for _ in range(3):
        codes.verify_code(second, wrong(code))
    issue(second)
    # an expired code, a fingerprint given without remembering the device
    code = issue(third)
    assert codes.verify_code(third, wrong(code), fingerprint=FINGERPRINTS[0]).reason is (
        Reason.WRONG_CODE
    )
    clock.advance(minutes=16)
    assert codes.verify_code(third, code) == Refused(Reason.EXPIRED)
    issue(third)
    # a locked account, refused requests
    for _ in range(4):
        code = issue(locked)
        for _ in range(3):
            if codes.verify_code(locked, wrong(code)).reason is Reason.ACCOUNT_LOCKED:
                break
    assert codes.request_code(locked).reason is Reason.ACCOUNT_LOCKED
    # a limiter with a secret: keys are stored as keyed hashes
    limiter = harness.limiter(limit=2, window=timedelta(minutes=10), secret=SECRET, namespace="ip")
    for key in LIMITER_KEYS:
        decision = limiter.hit(key)
        limiter.hit(key)
        limiter.hit(key)  # refused
        limiter.release(key, decision.entry)
    return issued


@pytest.mark.parametrize(
    "policy", [Policy(), Policy(code_length=12)], ids=["6-digit codes", "12-digit codes"]
)
def test_r4_2_dump_reveals_no_code_account_or_fingerprint(
    harness: Harness, clock: FakeClock, policy: Policy
) -> None:
    """R4.2 'The store never holds a code, an account identifier ... or a fingerprint in clear'"""
    issued = scenario(harness, clock, policy)
    dump = harness.dump()
    assert len(dump) > 200  # the scenario did store something
    assert len(issued) == 13
    leaks = {}
    for account in ACCOUNTS:
        leaks[f"account {account!r}"] = found(dump, account)
    for fingerprint in FINGERPRINTS:
        leaks[f"fingerprint {fingerprint!r}"] = found(dump, fingerprint)
    for code in issued:
        leaks[f"code {code!r}"] = found(dump, code, bounded=policy.code_length < 12)
    assert {what: hits for what, hits in leaks.items() if hits} == {}


def test_r4_2_limiter_with_secret_stores_no_key(harness: Harness) -> None:
    """R4.2 'SlidingWindowLimiter hashes its keys the same way when given a secret.'"""
    limiter = harness.limiter(limit=3, secret=SECRET, namespace="phone")
    for key in LIMITER_KEYS:
        limiter.hit(key)
    dump = harness.dump()
    assert dump
    for key in LIMITER_KEYS:
        assert found(dump, key) == [], key


def test_r4_2_limiter_without_secret_stores_its_keys_in_clear(harness: Harness) -> None:
    """R4.2 'hashes its keys ... when given a secret': without one, keys are stored as given."""
    limiter = harness.limiter(limit=3, namespace="phone")
    for key in LIMITER_KEYS:
        limiter.hit(key)
    dump = harness.dump()
    for key in LIMITER_KEYS:  # the search above does find a key that is there
        assert found(dump, key) == [key.encode()], key


def test_r4_2_search_finds_every_encoding() -> None:
    """The search of this file finds each encoding it claims to (it can fail)."""
    code = "048213"
    for form in encodings(code):
        assert found(b"prefix " + form + b" suffix", code, bounded=True) == [form]
    assert found(b"ts=17382048213999", code, bounded=True) == []
    assert found(b"code='048213'", code, bounded=True) == [b"048213"]


# -- R4.4: compared in constant time ------------------------------------------------------------


def _counting_compare(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Count every ``hmac.compare_digest`` (the lengths compared), passing each through."""
    import hmac

    seen: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare)
    return seen


@pytest.mark.parametrize("right", [True, False])
def test_r4_4_a_typed_code_is_compared_in_constant_time_under_every_secret(
    monkeypatch: pytest.MonkeyPatch, right: bool
) -> None:
    """The memory store compares the keyed hash under every secret with compare_digest,
    without stopping at the first match (how many compares never depends on the code);
    the Redis scripts compare keyed hashes, which leak nothing by their timing."""
    from ameli_otp import MemoryBackend, SecurityCodes

    clock = FakeClock()
    codes = SecurityCodes(MemoryBackend(), secret=[SECRET, b"b" * 32, b"c" * 32], clock=clock)
    code = codes.request_code(ACCOUNTS[0]).code
    typed = code if right else f"{(int(code) + 1) % 10**6:06d}"
    seen = _counting_compare(monkeypatch)
    result = codes.verify_code(ACCOUNTS[0], typed)
    assert result.ok is right
    assert seen == [(16, 16)] * 3  # one per secret, whether or not the first matched


def test_r4_4_device_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both tags of a token, under every secret, whatever matches: 2 compares per secret."""
    from ameli_otp import MemoryBackend, SecurityCodes

    codes = SecurityCodes(MemoryBackend(), secret=[SECRET, b"b" * 32], clock=FakeClock())
    code = codes.request_code(ACCOUNTS[0]).code
    token = codes.verify_code(
        ACCOUNTS[0], code, remember_device=True, fingerprint=FINGERPRINTS[0]
    ).device_token
    assert token is not None
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for candidate, trusted in ((token, True), (forged, False)):
        seen = _counting_compare(monkeypatch)
        assert codes.is_trusted_device(ACCOUNTS[0], candidate, FINGERPRINTS[0]) is trusted
        assert len(seen) == 4, seen
        monkeypatch.undo()
