"""RULES.md R11 (authenticator apps) and R12 (recovery codes), one named test per sentence.

Each test runs once per store kind of ``tests.harness.KINDS`` (memory, redis,
cluster and the async face of each) through the ``harness`` fixture, with the
``clock`` FakeClock. Authenticator codes are computed here by :func:`rfc6238`, an
implementation of the RFC written for these tests (checked against the RFC's own
vectors below), not by pyotp, which the library uses: the two must agree.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import struct
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from ameli_otp import (
    Enrollment,
    EventKind,
    Policy,
    Reason,
    Refused,
    SecurityCodes,
    Verified,
)
from ameli_otp.messages import message
from ameli_otp.testing import FakeClock
from tests.harness import KINDS, OTHER_SECRET, SECRET, Harness, make_harness

FP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0|fr-FR"
STEP = 30_000  # ms
ACCOUNT = "1 85 07 75 123 456"
NAME = "marie@example.fr"


def rfc6238(secret: bytes, t_ms: int, digits: int = 6) -> str:
    """RFC 6238 (TOTP, HMAC-SHA1, 30 s steps) by the RFC's own steps (RFC 4226 section 5.3)."""
    counter = struct.pack(">Q", t_ms // STEP)
    mac = hmac.new(secret, counter, hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def secret_of(e: Enrollment) -> bytes:
    return base64.b32decode(e.secret)


def code(e: Enrollment, t_ms: int) -> str:
    return rfc6238(secret_of(e), t_ms)


def other(c: str) -> str:
    """A well-formed code that is not ``c``."""
    return f"{(int(c) + 1) % 10**6:06d}"


def enrolled(codes: SecurityCodes, clock: FakeClock, account: str = ACCOUNT) -> Enrollment:
    """An account with a confirmed authenticator (confirmed at the current step)."""
    e = codes.enroll_authenticator(account, name=NAME)
    assert codes.confirm_authenticator(account, code(e, clock.ms)) == Verified()
    return e


def at_step_start(clock: FakeClock) -> int:
    """Move the clock to the start of the next step; return that step."""
    step = clock.ms // STEP + 1
    clock.set(step * STEP / 1000)
    return step


# -- R11.1: enrollment -------------------------------------------------------------------------
def test_r11_1_enroll_returns_a_160_bit_secret_once_with_its_uri_and_qr(codes: Any) -> None:
    """R11.1 'creates a new secret (160 bits) and returns it once, with its otpauth://
    provisioning URI and a QR code (SVG)'."""
    e = codes.enroll_authenticator(ACCOUNT, name=NAME, issuer="ameli")
    assert len(secret_of(e)) == 20
    assert re.fullmatch(r"[A-Z2-7]{32}", e.secret)
    assert e.provisioning_uri == (
        f"otpauth://totp/ameli:marie%40example.fr?secret={e.secret}&issuer=ameli"
    )
    svg = e.qr_svg
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "<path" in svg
    again = codes.enroll_authenticator(ACCOUNT, name=NAME)
    assert again.secret != e.secret  # a new secret each time
    assert e.secret not in repr(e)
    assert e.provisioning_uri not in repr(e)


def test_r11_1_enrollment_is_pending_until_a_valid_code_confirms_it(
    codes: Any, clock: FakeClock
) -> None:
    """R11.1 'The enrollment is pending until confirm_authenticator receives a valid code'."""
    e = codes.enroll_authenticator(ACCOUNT, name=NAME)
    now_code = code(e, clock.ms)
    assert codes.verify_authenticator(ACCOUNT, now_code) == Refused(Reason.NO_AUTHENTICATOR)
    assert codes.inspect(ACCOUNT).authenticator is False
    assert codes.confirm_authenticator(ACCOUNT, other(now_code)) == Refused(
        Reason.WRONG_CODE, attempts_left=9
    )
    assert codes.confirm_authenticator(ACCOUNT, now_code) == Verified()
    assert codes.inspect(ACCOUNT).authenticator is True
    clock.advance(30)
    assert codes.verify_authenticator(ACCOUNT, code(e, clock.ms)) == Verified()
    # nothing is pending any more
    assert codes.confirm_authenticator(ACCOUNT, code(e, clock.ms)) == Refused(
        Reason.NO_AUTHENTICATOR
    )


def test_r11_1_a_pending_enrollment_expires_after_code_ttl(codes: Any, clock: FakeClock) -> None:
    """R11.1 'a pending enrollment expires after code_ttl' (at exactly code_ttl, expired)."""
    ttl = codes.policy.code_ttl
    for account, wait, want in [
        ("a1", ttl - timedelta(milliseconds=1), Verified()),
        ("a2", ttl, Refused(Reason.NO_AUTHENTICATOR)),
    ]:
        start = clock.ms
        e = codes.enroll_authenticator(account, name=NAME)
        clock.advance(wait)
        assert codes.confirm_authenticator(account, code(e, clock.ms)) == want
        assert codes.inspect(account).consecutive_failures == 0  # not a guess
        clock.set(start / 1000)
    codes.enroll_authenticator("a3", name=NAME)
    clock.advance(ttl)
    assert codes.remove_authenticator("a3") is False  # an expired one is no enrollment


def test_r11_1_a_new_enrollment_replaces_a_pending_one(codes: Any, clock: FakeClock) -> None:
    """R11.1 'a new enrollment replaces a pending one'."""
    first = codes.enroll_authenticator(ACCOUNT, name=NAME)
    second = codes.enroll_authenticator(ACCOUNT, name=NAME)
    now = clock.ms
    if code(first, now) != code(second, now):  # the first one's code is wrong now
        assert codes.confirm_authenticator(ACCOUNT, code(first, now)).reason is Reason.WRONG_CODE
    assert codes.confirm_authenticator(ACCOUNT, code(second, now)) == Verified()


def test_r11_1_at_most_one_confirmed_authenticator(codes: Any, clock: FakeClock) -> None:
    """R11.1 'An account has at most one confirmed authenticator': confirming a new
    enrollment replaces it (a new phone); until then the old one works."""
    old = enrolled(codes, clock)
    new = codes.enroll_authenticator(ACCOUNT, name=NAME)
    clock.advance(30)
    assert codes.verify_authenticator(ACCOUNT, code(old, clock.ms)) == Verified()
    clock.advance(30)
    assert codes.confirm_authenticator(ACCOUNT, code(new, clock.ms)) == Verified()
    clock.advance(30)
    now = clock.ms
    if code(old, now) != code(new, now):
        assert codes.verify_authenticator(ACCOUNT, code(old, now)).reason is Reason.WRONG_CODE
    assert codes.verify_authenticator(ACCOUNT, code(new, now)) == Verified()


def test_r11_1_remove_authenticator_removes_it(codes: Any, clock: FakeClock) -> None:
    """R11.1 'remove_authenticator removes it' (and says whether there was one)."""
    e = enrolled(codes, clock)
    assert codes.remove_authenticator(ACCOUNT) is True
    assert codes.remove_authenticator(ACCOUNT) is False
    clock.advance(30)
    assert codes.verify_authenticator(ACCOUNT, code(e, clock.ms)) == Refused(
        Reason.NO_AUTHENTICATOR
    )
    assert codes.inspect(ACCOUNT).authenticator is False
    codes.enroll_authenticator(ACCOUNT, name=NAME)  # a pending one is removed too
    assert codes.remove_authenticator(ACCOUNT) is True
    assert codes.confirm_authenticator(ACCOUNT, "123456") == Refused(Reason.NO_AUTHENTICATOR)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "a:b"}, ValueError, "name"),
        ({"name": 7}, TypeError, "name"),
        ({"name": "n", "issuer": "x:y"}, ValueError, "issuer"),
        ({"name": "n", "issuer": ""}, ValueError, "issuer"),
        ({"name": "n\n"}, ValueError, "name"),
    ],
)
def test_r11_1_bad_enrollment_arguments_raise_before_anything_is_stored(
    codes: Any, harness: Harness, kwargs: dict[str, Any], error: type, words: str
) -> None:
    """R7.4 for R11.1: a bad issuer or name raises, naming it, and nothing is stored."""
    with pytest.raises(error, match=words):
        codes.enroll_authenticator(ACCOUNT, **kwargs)
    assert harness.dump() == b""
    with pytest.raises(ValueError, match="account"):
        codes.enroll_authenticator("", name=NAME)


# -- R11.2: verification -----------------------------------------------------------------------
RFC_SECRET = b"12345678901234567890"
RFC_VECTORS = [  # RFC 6238 appendix B, SHA1: (T in seconds, the 8-digit TOTP)
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


def test_r11_2_rfc6238_vectors() -> None:
    """R11.2: the test's RFC 6238 and the library's pyotp codes give the RFC's vectors."""
    from ameli_otp._factors_core import code_at

    for t, totp in RFC_VECTORS:
        assert rfc6238(RFC_SECRET, t * 1000, digits=8) == totp
        assert code_at(RFC_SECRET, t * 1000 // STEP) == totp[-6:]


@pytest.mark.parametrize(("t", "totp"), RFC_VECTORS)
def test_r11_2_rfc6238_vector_times_through_the_api(
    harness: Harness, clock: FakeClock, t: int, totp: str
) -> None:
    """R11.2 through the public API at each vector's time (fixed clock): the code the RFC's
    algorithm gives for the enrolled secret is accepted, its neighbours' too (drift 1)."""
    clock.set(t)
    codes = harness.codes()
    e = codes.enroll_authenticator(ACCOUNT, name=NAME)
    now = clock.ms
    assert codes.confirm_authenticator(ACCOUNT, rfc6238(secret_of(e), now - STEP)) == Verified()
    assert codes.verify_authenticator(ACCOUNT, rfc6238(secret_of(e), now)) == Verified()
    assert codes.verify_authenticator(ACCOUNT, rfc6238(secret_of(e), now + STEP)) == Verified()


@pytest.mark.parametrize("drift", [0, 1, 2])
def test_r11_2_the_current_step_and_totp_drift_steps_either_side_to_the_millisecond(
    harness: Harness, clock: FakeClock, drift: int
) -> None:
    """R11.2 'the current step and Policy.totp_drift steps either side (default 1)': a
    code of step k is accepted at every millisecond of steps k - drift to k + drift, and
    refused at the last millisecond before and the first after."""
    codes = harness.codes(policy=Policy(totp_drift=drift))
    step = at_step_start(clock) + 100
    cases = [  # (the clock in ms, accepted?) for the code of `step`
        ((step - drift) * STEP - 1, False),
        ((step - drift) * STEP, True),
        (step * STEP + STEP // 2, True),
        ((step + drift + 1) * STEP - 1, True),
        ((step + drift + 1) * STEP, False),
    ]
    for i, (t, accepted) in enumerate(cases):
        account = f"drift-{i}"
        clock.set((step - 40) * STEP / 1000)  # confirmed well before, at an earlier step
        e = enrolled(codes, clock, account)
        clock.set(t / 1000)
        result = codes.verify_authenticator(account, rfc6238(secret_of(e), step * STEP))
        assert result.ok is accepted, (t, result)


def test_r11_2_totp_drift_is_checked() -> None:
    """R7.4 for R11.2: totp_drift is an int within 0..10, named when wrong."""
    assert Policy().totp_drift == 1
    for bad, error in [(-1, ValueError), (11, ValueError), (True, TypeError), (1.0, TypeError)]:
        with pytest.raises(error, match="totp_drift"):
            Policy(totp_drift=bad)


def test_r11_2_a_step_accepted_and_every_earlier_one_is_never_accepted_again(
    codes: Any, clock: FakeClock
) -> None:
    """R11.2 'A step that was accepted, and any earlier step, is never accepted again'."""
    step = at_step_start(clock)
    e = enrolled(codes, clock)  # confirmed at `step`: that one is used
    assert codes.verify_authenticator(ACCOUNT, code(e, step * STEP)) == Refused(Reason.CODE_REUSED)
    assert codes.verify_authenticator(ACCOUNT, code(e, (step + 1) * STEP)) == Verified()
    for used in (step + 1, step, step - 1):  # the accepted one and earlier ones (in drift)
        assert codes.verify_authenticator(ACCOUNT, code(e, used * STEP)) == Refused(
            Reason.CODE_REUSED
        )
    clock.advance(3600)  # an hour later, the old codes are merely out of the window
    assert codes.verify_authenticator(ACCOUNT, code(e, clock.ms)) == Verified()
    assert codes.verify_authenticator(ACCOUNT, code(e, clock.ms)) == Refused(Reason.CODE_REUSED)
    status = codes.inspect(ACCOUNT)
    assert status.consecutive_failures == 0  # a replay is not a failure
    assert message(Refused(Reason.CODE_REUSED), "en") == (
        "This code was already used: wait for the next code of your app."
    )


THREADS = 32
SYNC_KINDS = [k for k in KINDS if not k.endswith("-async")]


@pytest.fixture(params=SYNC_KINDS)
def sync_harness(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Harness]:
    """One sync store kind (threads need a sync face)."""
    with make_harness(request.param, clock, request) as h:
        yield h


@contextlib.contextmanager
def threads() -> Iterator[ThreadPoolExecutor]:
    """32 workers, switching as often as the interpreter can (as in test_concurrency.py)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            yield pool
    finally:
        sys.setswitchinterval(interval)


def test_r11_2_concurrent_verifications_of_one_code_give_exactly_one_success(
    sync_harness: Harness, clock: FakeClock
) -> None:
    """R11.2 'M concurrent verifications of one code give exactly one success': 32 threads,
    each round on a fresh step (1000 asyncio tasks: tests/test_async.py)."""
    codes = sync_harness.codes()
    e = enrolled(codes, clock)
    with threads() as pool:
        for _ in range(5):
            clock.advance(30)
            typed = code(e, clock.ms)
            results = list(
                pool.map(lambda _, t=typed: codes.verify_authenticator(ACCOUNT, t), range(THREADS))
            )
            assert results.count(Verified()) == 1
            assert results.count(Refused(Reason.CODE_REUSED)) == THREADS - 1


def test_r11_2_success_may_trust_the_device(codes: Any, clock: FakeClock) -> None:
    """R11.2 'Success may trust the device (R3)': a token for this browser only."""
    e = enrolled(codes, clock)
    clock.advance(30)
    with pytest.raises(ValueError, match="fingerprint"):  # R3.1: before anything is read
        codes.verify_authenticator(ACCOUNT, code(e, clock.ms), remember_device=True)
    result = codes.verify_authenticator(
        ACCOUNT, code(e, clock.ms), remember_device=True, fingerprint=FP
    )
    assert isinstance(result, Verified)
    assert result.device_token
    assert codes.is_trusted_device(ACCOUNT, result.device_token, FP) is True
    assert codes.is_trusted_device(ACCOUNT, result.device_token, FP + "x") is False
    assert len(codes.inspect(ACCOUNT).devices) == 1
    clock.advance(30)
    plain = codes.verify_authenticator(ACCOUNT, code(e, clock.ms), fingerprint=FP)
    assert plain == Verified()  # a fingerprint without remember_device trusts nothing


# -- R11.3: failures ---------------------------------------------------------------------------
def test_r11_3_wrong_codes_count_in_the_same_failures_and_lock_as_email_codes(
    harness: Harness, clock: FakeClock
) -> None:
    """R11.3 'Wrong codes count in the same consecutive failures as e-mail codes, and the
    same lock applies (R2.6)'."""
    policy = Policy(max_failed_attempts=4)
    codes = harness.codes(policy=policy)
    e = enrolled(codes, clock)
    issued = codes.request_code(ACCOUNT)
    assert codes.verify_code(ACCOUNT, other(issued.code)).attempts_left == 2  # e-mail: 1
    clock.advance(30)
    right = code(e, clock.ms)
    assert codes.verify_authenticator(ACCOUNT, other(right)) == Refused(
        Reason.WRONG_CODE,
        attempts_left=2,  # 4 - 2: what is left before the lock
    )
    assert codes.verify_code(ACCOUNT, other(issued.code)).attempts_left == 1  # e-mail: 3
    locked = codes.verify_authenticator(ACCOUNT, other(right))  # the 4th: the lock
    assert locked == Refused(Reason.ACCOUNT_LOCKED, retry_after=policy.lockout)
    assert codes.verify_authenticator(ACCOUNT, right).reason is Reason.ACCOUNT_LOCKED
    assert codes.verify_code(ACCOUNT, issued.code).reason is Reason.ACCOUNT_LOCKED
    assert codes.request_code(ACCOUNT).reason is Reason.ACCOUNT_LOCKED
    assert codes.unlock(ACCOUNT) is True
    assert codes.verify_authenticator(ACCOUNT, right) == Verified()


def test_r11_3_a_success_ends_the_run_of_failures(codes: Any, clock: FakeClock) -> None:
    """R11.3 with R2.5: the failures are consecutive: a success sets them back to zero."""
    e = enrolled(codes, clock)
    clock.advance(30)
    right = code(e, clock.ms)
    for left in (9, 8, 7):
        assert codes.verify_authenticator(ACCOUNT, other(right)).attempts_left == left
    assert codes.inspect(ACCOUNT).consecutive_failures == 3
    assert codes.verify_authenticator(ACCOUNT, right) == Verified()
    assert codes.inspect(ACCOUNT).consecutive_failures == 0


@pytest.mark.parametrize(
    "typed", ["12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16", "", "9" * 65]
)
def test_r11_3_a_malformed_code_is_not_a_guess(codes: Any, clock: FakeClock, typed: str) -> None:
    """R11.3 'a malformed code is not a guess (R2.1)': MALFORMED_CODE, nothing counted."""
    enrolled(codes, clock)
    assert codes.verify_authenticator(ACCOUNT, typed) == Refused(Reason.MALFORMED_CODE)
    assert codes.confirm_authenticator(ACCOUNT, typed) == Refused(Reason.MALFORMED_CODE)
    assert codes.inspect(ACCOUNT).consecutive_failures == 0
    with pytest.raises(TypeError, match="code"):
        codes.verify_authenticator(ACCOUNT, 123456)


def test_r11_3_spaces_and_dashes_are_ignored(codes: Any, clock: FakeClock) -> None:
    """R2.1 for R11: spaces, tabs and '-' in a typed authenticator code are dropped."""
    e = enrolled(codes, clock)
    clock.advance(30)
    c = code(e, clock.ms)
    assert codes.verify_authenticator(ACCOUNT, f" {c[:3]} -\t{c[3:]} ") == Verified()


# -- R11.4: secrets at rest --------------------------------------------------------------------
def test_r11_4_a_dump_of_the_store_reveals_no_authenticator_secret(
    codes: Any, harness: Harness, clock: FakeClock
) -> None:
    """R11.4 'A dump of the store reveals no authenticator secret' (nor the account, nor
    the URI's name)."""
    e = enrolled(codes, clock)
    pending = codes.enroll_authenticator(ACCOUNT, name=NAME)
    dump = harness.dump()
    for enrollment in (e, pending):
        raw = secret_of(enrollment)
        for shown in (enrollment.secret.encode(), raw, raw.hex().encode(), base64.b64encode(raw)):
            assert shown not in dump
        assert enrollment.secret.lower().encode() not in dump.lower()
    for clear in (b"1850775123456", b"185077", NAME.encode(), b"marie"):
        assert clear not in dump


def test_r11_4_adding_a_new_first_secret_keeps_every_enrollment(
    harness: Harness, clock: FakeClock
) -> None:
    """R11.4 'adding a new first secret (rotation, R4.1) keeps every enrollment working';
    dropping the secret an enrollment was made under disables it (docs/security.md)."""
    newest = b"newest-secret-0123456789abcdef-01234567"
    before = harness.codes(secret=[OTHER_SECRET, SECRET])
    e = enrolled(before, clock)
    pending = before.enroll_authenticator("second", name=NAME)
    rotated = harness.codes(secret=[newest, OTHER_SECRET, SECRET])
    clock.advance(30)
    assert rotated.verify_authenticator(ACCOUNT, code(e, clock.ms)) == Verified()
    assert rotated.confirm_authenticator("second", code(pending, clock.ms)) == Verified()
    made_now = rotated.enroll_authenticator("third", name=NAME)  # under the newest secret
    assert rotated.confirm_authenticator("third", code(made_now, clock.ms)) == Verified()
    dropped = harness.codes(secret=[newest, SECRET])  # OTHER_SECRET made the first two
    clock.advance(30)
    assert dropped.verify_authenticator(ACCOUNT, code(e, clock.ms)) == Refused(
        Reason.NO_AUTHENTICATOR
    )
    assert dropped.verify_authenticator("third", code(made_now, clock.ms)) == Verified()


# -- R12.1: a set of recovery codes ------------------------------------------------------------
def test_r12_1_ten_codes_of_ten_characters_from_an_unambiguous_alphabet_shown_once(
    codes: Any, harness: Harness
) -> None:
    """R12.1 'returns 10 codes of 10 characters from an unambiguous alphabet, shown once;
    the store holds keyed hashes only'."""
    got = codes.new_recovery_codes(ACCOUNT)
    assert isinstance(got, tuple)
    assert len(got) == 10
    assert len(set(got)) == 10
    for c in got:
        assert re.fullmatch(r"[2-9A-HJKMNP-TV-Z]{5}-[2-9A-HJKMNP-TV-Z]{5}", c), c
        assert not set(c) & set("01OILU")
    dump = harness.dump()
    for c in got:
        plain = c.replace("-", "")
        for shown in (c, plain, plain.lower()):
            assert shown.encode() not in dump
    assert codes.inspect(ACCOUNT).recovery_codes_left == 10


def test_r12_1_a_new_set_replaces_the_old_one(codes: Any) -> None:
    """R12.1 'A new set replaces the old one'."""
    old = codes.new_recovery_codes(ACCOUNT)
    new = codes.new_recovery_codes(ACCOUNT)
    assert not set(old) & set(new)
    assert codes.use_recovery_code(ACCOUNT, old[0]) == Refused(Reason.WRONG_CODE, attempts_left=9)
    assert codes.use_recovery_code(ACCOUNT, new[0]) == Verified(recovery_codes_left=9)


# -- R12.2: using one --------------------------------------------------------------------------
def test_r12_2_each_code_succeeds_once_and_says_how_many_remain(codes: Any) -> None:
    """R12.2 'succeeds once per code, atomically, and says how many codes remain'."""
    got = codes.new_recovery_codes(ACCOUNT)
    for i, c in enumerate(got):
        assert codes.use_recovery_code(ACCOUNT, c) == Verified(recovery_codes_left=9 - i)
        assert codes.inspect(ACCOUNT).recovery_codes_left == 9 - i
    assert codes.use_recovery_code(ACCOUNT, got[0]) == Refused(Reason.NO_RECOVERY_CODES)
    assert codes.inspect(ACCOUNT).consecutive_failures == 0  # nothing to guess against
    again = codes.new_recovery_codes(ACCOUNT)
    assert codes.use_recovery_code(ACCOUNT, again[3]) == Verified(recovery_codes_left=9)
    assert codes.use_recovery_code(ACCOUNT, again[3]) == Refused(
        Reason.WRONG_CODE,
        attempts_left=9,  # used: now a wrong code
    )


def test_r12_2_separators_and_case_are_ignored(codes: Any) -> None:
    """R12.2 'separators and case are ignored'."""
    got = codes.new_recovery_codes(ACCOUNT)
    typed = [
        got[0].replace("-", ""),
        got[1].lower(),
        f" {got[2][:3]} {got[2][3:7]}\t{got[2][7:]} ",
        got[3].replace("-", "--").swapcase(),
    ]
    for i, t in enumerate(typed):
        assert codes.use_recovery_code(ACCOUNT, t) == Verified(recovery_codes_left=9 - i)


@pytest.mark.parametrize(
    "typed", ["ABCDE-FGHJ", "ABCDE-FGHJKL", "ABCDE-FGHJ0", "ABCDE_FGHJK", "ÀBCDE-FGHJK", ""]
)
def test_r12_2_a_malformed_recovery_code_is_not_a_guess(codes: Any, typed: str) -> None:
    """R12.2 with R2.1: what cannot be a recovery code is MALFORMED_CODE, not counted."""
    codes.new_recovery_codes(ACCOUNT)
    assert codes.use_recovery_code(ACCOUNT, typed) == Refused(Reason.MALFORMED_CODE)
    assert codes.inspect(ACCOUNT).consecutive_failures == 0
    with pytest.raises(TypeError, match="code"):
        codes.use_recovery_code(ACCOUNT, None)


def test_r12_2_wrong_codes_count_as_failures(harness: Harness, clock: FakeClock) -> None:
    """R12.2 'wrong codes count as failures (R2.6)': the same count and lock."""
    policy = Policy(max_failed_attempts=3)
    codes = harness.codes(policy=policy)
    got = codes.new_recovery_codes(ACCOUNT)
    wrong = "22222-22222" if "22222-22222" not in got else "33333-33333"
    assert codes.use_recovery_code(ACCOUNT, wrong) == Refused(Reason.WRONG_CODE, attempts_left=2)
    issued = codes.request_code(ACCOUNT)
    assert codes.verify_code(ACCOUNT, other(issued.code)).reason is Reason.WRONG_CODE
    assert codes.use_recovery_code(ACCOUNT, wrong) == Refused(
        Reason.ACCOUNT_LOCKED, retry_after=policy.lockout
    )
    assert codes.use_recovery_code(ACCOUNT, got[0]).reason is Reason.ACCOUNT_LOCKED
    assert codes.inspect(ACCOUNT).recovery_codes_left == 10  # a lock uses up nothing
    clock.advance(policy.lockout)
    assert codes.use_recovery_code(ACCOUNT, got[0]) == Verified(recovery_codes_left=9)


def test_r12_2_concurrent_uses_of_one_code_give_exactly_one_success(
    sync_harness: Harness,
) -> None:
    """R12.2 'succeeds once per code, atomically': 32 threads, one success (1000 asyncio
    tasks: tests/test_async.py)."""
    codes = sync_harness.codes(policy=Policy(max_failed_attempts=100))
    got = codes.new_recovery_codes(ACCOUNT)
    with threads() as pool:
        results = list(pool.map(lambda _: codes.use_recovery_code(ACCOUNT, got[0]), range(THREADS)))
    assert results.count(Verified(recovery_codes_left=9)) == 1
    assert sorted(r.attempts_left for r in results if not r.ok) == list(range(69, 100))
    assert codes.inspect(ACCOUNT).recovery_codes_left == 9


def test_r12_2_success_may_trust_the_device(codes: Any) -> None:
    """R12.2 with R3: ``use_recovery_code(..., remember_device=True, fingerprint=...)``."""
    got = codes.new_recovery_codes(ACCOUNT)
    result = codes.use_recovery_code(ACCOUNT, got[0], remember_device=True, fingerprint=FP)
    assert isinstance(result, Verified)
    assert result.recovery_codes_left == 9
    assert codes.is_trusted_device(ACCOUNT, result.device_token, FP) is True


# -- events (R9.3 for R11, R12) ----------------------------------------------------------------
def test_r11_and_r12_report_events_with_their_factor(harness: Harness, clock: FakeClock) -> None:
    """R9.3: the authenticator and recovery-code checks report the same kinds with a factor."""
    events: list[Any] = []
    codes = harness.codes(on_event=events.append)
    e = enrolled(codes, clock)
    clock.advance(30)
    codes.verify_authenticator(ACCOUNT, other(code(e, clock.ms)))
    got = codes.new_recovery_codes(ACCOUNT)
    codes.use_recovery_code(ACCOUNT, got[0])
    codes.remove_authenticator(ACCOUNT)
    seen = [(ev.kind, ev.factor, ev.reason) for ev in events]
    assert seen == [
        (EventKind.AUTHENTICATOR_ENROLLED, "authenticator", None),
        (EventKind.CODE_VERIFIED, "authenticator", None),
        (EventKind.CODE_REJECTED, "authenticator", Reason.WRONG_CODE),
        (EventKind.RECOVERY_CODES_CREATED, "recovery", None),
        (EventKind.CODE_VERIFIED, "recovery", None),
        (EventKind.AUTHENTICATOR_REMOVED, "authenticator", None),
    ]
    text = repr(events)
    assert e.secret not in text
    assert got[0] not in text
    assert ACCOUNT not in text
