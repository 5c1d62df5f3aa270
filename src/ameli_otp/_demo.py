"""``ameli-otp demo``: the practical sheet's whole story, checked step by step.

The story runs on a :class:`~ameli_otp.MemoryBackend` with a
:class:`~ameli_otp.testing.FakeClock`, so the hours and months pass at once.
Every printed line is one step, prefixed with the simulated time (UTC); a step
that the rules decide is checked against what RULES.md says and marked ``✓`` or
``✗``. What the person at the login page would read comes from
:mod:`ameli_otp.messages`, in the chosen language.

A support-desk chapter follows a second person who locks himself out by
mistyping: the desk sees what ``ameli-otp inspect`` shows (the same lines),
revokes a browser by its device id and unlocks. Every event of the story goes to
a counting hook: :func:`ameli_otp.metrics.prometheus_hook` on a registry of its
own when prometheus-client is installed (the ``metrics`` extra), else a plain
counter; the counts are printed and checked at the end.
"""

from __future__ import annotations

import collections
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TextIO

from ._facade import SecurityCodes
from ._memory import MemoryBackend
from ._policy import Policy
from ._results import Issued, Reason, Refused, Verified
from ._support_cli import account_ref, status_lines
from .events import Event, EventKind
from .messages import LANGS, SPAM_HINT, help_lines, message
from .testing import FakeClock

__all__ = ["run"]

#: a made-up, NIR-shaped account id (sex, year and month of birth, department, commune, order)
ACCOUNT = "2850775123456"
#: browser fingerprints, as a site would compute them (here, plain labels)
HOME_BROWSER = "ordinateur personnel / Firefox 128 / Linux"
WORK_BROWSER = "ordinateur du travail / Chrome 131 / Windows"
OTHER_BROWSER = "navigateur inconnu / Safari 17 / macOS"
#: the support-desk chapter's person, and his browsers
PAUL = "1720369012345"
PAUL_HOME = "ordinateur de Paul / Firefox 128 / Windows"
PAUL_LAPTOP = "ancien portable de Paul / Edge 131 / Windows"
PAUL_NEW = "nouveau portable de Paul / Chrome 132 / Windows"

_START = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)  # a Monday, the month of the sheet's version

_TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "title": (
            "Démo ameli-otp : la fiche pratique « 09. Je me connecte au compte ameli "
            "depuis un ordinateur », jouée sur MemoryBackend avec une horloge simulée (UTC)."
        ),
        "password": (
            "Mot de passe accepté (simulé : ameli_otp ne vérifie pas les mots de passe) ; "
            "pas de cookie de confiance sur ce navigateur, il faut un code de sécurité."
        ),
        "first_code": (
            "« Recevoir un code de sécurité » : code {code} envoyé par e-mail (simulé), "
            "valable jusqu'à {until} (codes encore possibles dans l'heure : {remaining})."
        ),
        "typo": (
            "Je tape « {typed} » (un chiffre oublié) → {msg} "
            "Une faute de frappe ne compte pas comme un essai."
        ),
        "remember": (
            "Je tape « {typed} » et je coche « ne plus saisir de code pendant 6 mois » "
            "→ connexion réussie ; ce navigateur est mémorisé (jeton {token}…, à garder "
            "dans un cookie)."
        ),
        "trusted": (
            "Le lendemain, même ordinateur, même navigateur : le cookie est reconnu, "
            "pas de code à saisir."
        ),
        "other_browser": (
            "Au travail, un autre navigateur, sans ce cookie : le code de sécurité est demandé."
        ),
        "copied_cookie": (
            "Même avec le cookie recopié dans cet autre navigateur : refusé, le jeton est "
            "lié au navigateur qui a coché la case."
        ),
        "code": (
            "Code {code} envoyé par e-mail (codes encore possibles dans l'heure : {remaining})."
        ),
        "expired": "Je tape « {typed} » 15 minutes pile après la demande → {msg}",
        "no_mail": (
            "Nouveau code {code} demandé, mais l'e-mail n'arrive pas "
            "(codes encore possibles dans l'heure : {remaining})."
        ),
        "again": (
            "Toujours rien : nouveau code {code} demandé "
            "(codes encore possibles dans l'heure : {remaining})."
        ),
        "too_many": "Sixième code demandé dans l'heure sans en avoir utilisé → {msg}",
        "spam": (
            "{hint} Le dernier code y était : je tape « {typed} » sans cocher la case "
            "(ordinateur partagé) → connexion réussie, aucun jeton."
        ),
        "freed": (
            "Un code utilisé pour se connecter ne compte plus : un nouveau code {code} peut "
            "être demandé (codes encore possibles dans l'heure : {remaining})."
        ),
        "intruder": (
            "Quelqu'un qui connaît le mot de passe essaie de deviner le code, "
            "depuis un autre navigateur."
        ),
        "intruder_code": (
            "Code demandé : il part dans la boîte mail de la titulaire, pas chez l'intrus "
            "(codes encore possibles dans l'heure : {remaining})."
        ),
        "guess": "Essai n°{n} « {typed} » → {msg}",
        "locked_request": "Une heure plus tard, la titulaire demande un code → {msg}",
        "locked_verify": (
            "Même le dernier code reçu, tapé juste, est refusé tant que le compte "
            "est bloqué → {msg}"
        ),
        "help": "Ce que la fiche propose quand on ne peut pas utiliser le service :",
        "unlock": (
            "Rendez-vous téléphonique : le support débloque le compte (unlock) ; le code "
            "annulé par le blocage ne revient pas → {msg}"
        ),
        "relogin": "Je tape le nouveau code « {typed} » → connexion réussie.",
        "still_trusted": (
            "183 jours moins 1 milliseconde après la case cochée : le navigateur est "
            "encore reconnu."
        ),
        "trust_over": (
            "183 jours (6 mois) après la case cochée : la confiance a pris fin, le code "
            "est demandé à nouveau."
        ),
        "paul": (
            "Un autre jour, un autre assuré : Paul ({account}), qui a coché la case sur "
            "deux ordinateurs."
        ),
        "paul_home": (
            "Paul se connecte sur son ordinateur personnel et coche la case → connexion "
            "réussie, navigateur mémorisé."
        ),
        "paul_laptop": "Trois jours plus tard, il coche aussi la case sur son ancien portable.",
        "paul_typos": (
            "Sur un nouveau portable, Paul recopie chaque fois le code d'un ancien e-mail : "
            "{n} codes faux, {codes} codes demandés ; le {n}e bloque le compte → {msg}"
        ),
        "paul_home_ok": (
            "Son ordinateur personnel est toujours reconnu : un navigateur de confiance ne "
            "passe pas par les codes, un blocage ne l'atteint pas."
        ),
        "desk_call": (
            "Paul appelle le support. Le conseiller lance « ameli-otp inspect {account} » : "
            "bloqué jusqu'au {until}, {codes} codes dans l'heure, {devices} navigateurs de "
            "confiance."
        ),
        "desk_revoke": (
            "Paul a vendu son ancien portable, mémorisé le {granted} : le conseiller le "
            "révoque (« ameli-otp revoke {account} {device_id} ») → révoqué ; son "
            "ordinateur personnel reste de confiance."
        ),
        "desk_unlock": (
            "Le conseiller débloque le compte (« ameli-otp unlock {account} ») → débloqué ; "
            "une seconde fois → rien à débloquer."
        ),
        "paul_code": (
            "Paul redemande un code : code {code} envoyé (codes encore possibles dans "
            "l'heure : {remaining}, car les {counting} codes demandés avant le blocage "
            "comptent encore)."
        ),
        "paul_login": "Il tape « {typed} » et coche la case → connexion réussie.",
        "laptop_gone": "Le jeton resté sur l'ancien portable n'est plus reconnu.",
        "metrics": (
            "Ce que le compteur des opérateurs a vu pendant l'histoire "
            "(ameli_otp.metrics.prometheus_hook, un registre Prometheus à part) :"
        ),
        "metrics_plain": (
            "Ce que les événements de l'histoire ont compté (un hook simple : avec "
            "pip install 'ameli-otp[metrics]', ce serait un compteur Prometheus) :"
        ),
        "metrics_check": (
            "{locked} blocages, {unlocked} déblocages, {revoked} navigateur révoqué : un "
            "événement par décision, aucun pour ce qui n'a rien changé."
        ),
        "all_good": "Les {n} étapes se sont passées comme le disent les règles.",
        "some_bad": "{bad} étape(s) sur {n} ne se sont pas passées comme le disent les règles.",
    },
    "en": {
        "title": (
            "ameli-otp demo: the practical sheet « 09. Je me connecte au compte ameli "
            "depuis un ordinateur », played on MemoryBackend with a simulated clock (UTC)."
        ),
        "password": (
            "Password accepted (simulated: ameli_otp does no password checking); "
            "no trust cookie on this browser, so a security code is needed."
        ),
        "first_code": (
            "« Recevoir un code de sécurité »: code {code} emailed (simulated), valid "
            "until {until} (codes still allowed this hour: {remaining})."
        ),
        "typo": (
            "I type « {typed} » (a digit left out) → {msg} A typo does not count as an attempt."
        ),
        "remember": (
            "I type « {typed} » and tick « no security code for 6 months » → logged in; "
            "this browser is remembered (token {token}…, to keep in a cookie)."
        ),
        "trusted": (
            "The next day, same computer, same browser: the cookie is recognised, no code to type."
        ),
        "other_browser": (
            "At work, another browser, without that cookie: a security code is asked for."
        ),
        "copied_cookie": (
            "Even with the cookie copied into this other browser: refused, the token is "
            "bound to the browser that ticked the box."
        ),
        "code": "Code {code} emailed (codes still allowed this hour: {remaining}).",
        "expired": "I type « {typed} » exactly 15 minutes after asking → {msg}",
        "no_mail": (
            "New code {code} asked for, but the email does not arrive "
            "(codes still allowed this hour: {remaining})."
        ),
        "again": (
            "Still nothing: new code {code} asked for (codes still allowed this hour: {remaining})."
        ),
        "too_many": "A sixth code asked for within the hour without using one → {msg}",
        "spam": (
            "{hint} The last code was there: I type « {typed} » without ticking the box "
            "(shared computer) → logged in, no token."
        ),
        "freed": (
            "A code used to log in no longer counts: a new code {code} may be asked for "
            "(codes still allowed this hour: {remaining})."
        ),
        "intruder": "Someone who knows the password tries to guess the code, from another browser.",
        "intruder_code": (
            "Code asked for: it goes to the account holder's mailbox, not to the intruder "
            "(codes still allowed this hour: {remaining})."
        ),
        "guess": "Attempt #{n} « {typed} » → {msg}",
        "locked_request": "An hour later, the account holder asks for a code → {msg}",
        "locked_verify": (
            "Even the last code received, typed right, is refused while the account "
            "is locked → {msg}"
        ),
        "help": "What the sheet offers when the service cannot be used:",
        "unlock": (
            "Phone appointment: the support desk unlocks the account (unlock); the code "
            "cancelled by the lock does not come back → {msg}"
        ),
        "relogin": "I type the new code « {typed} » → logged in.",
        "still_trusted": (
            "183 days minus 1 millisecond after ticking the box: the browser is still recognised."
        ),
        "trust_over": (
            "183 days (6 months) after ticking the box: the trust is over, a code is "
            "asked for again."
        ),
        "paul": (
            "Another day, another person: Paul ({account}), who ticked the box on two computers."
        ),
        "paul_home": (
            "Paul logs in on his own computer and ticks the box → logged in, browser remembered."
        ),
        "paul_laptop": "Three days later he ticks the box on his old laptop too.",
        "paul_typos": (
            "On a new laptop, Paul copies each time the code of an old email: {n} wrong "
            "codes, {codes} codes asked for; the {n}th locks the account → {msg}"
        ),
        "paul_home_ok": (
            "His own computer is still recognised: a trusted browser skips the codes, and "
            "a lock does not reach it."
        ),
        "desk_call": (
            "Paul calls the support desk. The agent runs « ameli-otp inspect {account} »: "
            "locked until {until}, {codes} codes in the hour, {devices} trusted browsers."
        ),
        "desk_revoke": (
            "Paul sold his old laptop, remembered on {granted}: the agent revokes it "
            "(« ameli-otp revoke {account} {device_id} ») → revoked; his own computer stays "
            "trusted."
        ),
        "desk_unlock": (
            "The agent unlocks the account (« ameli-otp unlock {account} ») → unlocked; "
            "a second time → nothing to unlock."
        ),
        "paul_code": (
            "Paul asks for a code again: code {code} emailed (codes still allowed this hour: "
            "{remaining}, since the {counting} codes asked for before the lock still count)."
        ),
        "paul_login": "He types « {typed} » and ticks the box → logged in.",
        "laptop_gone": "The token left on the old laptop is no longer recognised.",
        "metrics": (
            "What the operators' counter saw during the story "
            "(ameli_otp.metrics.prometheus_hook, a Prometheus registry of its own):"
        ),
        "metrics_plain": (
            "What the story's events counted (a plain hook: with "
            "pip install 'ameli-otp[metrics]' it would be a Prometheus counter):"
        ),
        "metrics_check": (
            "{locked} locks, {unlocked} unlocks, {revoked} browser revoked: one event per "
            "decision, none for what changed nothing."
        ),
        "all_good": "All {n} steps behaved as the rules say.",
        "some_bad": "{bad} of {n} steps did not behave as the rules say.",
    },
}


def _spaced(code: str) -> str:
    """The code as people type it, with a space in the middle: ``"048 213"``."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


def _other_code(code: str, k: int) -> str:
    """A code of the same length that is surely not ``code``."""
    size = 10 ** len(code)
    return str((int(code) + k) % size).zfill(len(code))


def _print(out: TextIO, text: str) -> None:
    """Print ``text``; a terminal that cannot show ✓ or « » gets ``?`` instead of a crash."""
    try:
        print(text, file=out)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "ascii"
        print(text.encode(encoding, "replace").decode(encoding), file=out)


class _Story:
    """Prints the steps, keeps the score."""

    def __init__(self, out: TextIO, lang: str, clock: FakeClock) -> None:
        self.out = out
        self.text = _TEXT[lang]
        self.lang = lang
        self.clock = clock
        self.steps = 0
        self.failed = 0

    def _emit(self, mark: str, line: str) -> None:
        ms = self.clock.ms % 1000
        stamp = f"{self.clock.now():%Y-%m-%d %H:%M:%S}" + (f".{ms:03d}" if ms else "")
        _print(self.out, f"[{stamp}] {mark} {line}")

    def say(self, key: str, **fields: object) -> None:
        """A line of the story that checks nothing."""
        self._emit("·", self.text[key].format(**fields))

    def raw(self, line: str) -> None:
        """A line of text that is not in the story's catalogue (the sheet's help)."""
        self._emit(" ", line)

    def check(self, ok: bool, key: str, **fields: object) -> None:
        """A step: ``ok`` is whether it behaved as the rules say."""
        self.steps += 1
        if not ok:
            self.failed += 1
        self._emit("✓" if ok else "✗", self.text[key].format(**fields))

    def summary(self) -> None:
        """The last line: how many steps behaved as the rules say."""
        if self.failed:
            line = self.text["some_bad"].format(bad=self.failed, n=self.steps)
        else:
            line = self.text["all_good"].format(n=self.steps)
        self._emit("✗" if self.failed else "✓", line)

    def msg(self, result: object) -> str:
        """What the person reads for ``result`` (a refusal), or the unexpected result."""
        if isinstance(result, Refused):
            return message(result, self.lang)
        return repr(result)


def _play(story: _Story, codes: SecurityCodes, policy: Policy) -> None:
    clock = story.clock
    per_hour = policy.max_unused_codes
    last_code = "0" * policy.code_length

    def request(key: str, remaining: int, **fields: object) -> str:
        """Ask for a code; the step is right if it is issued with ``remaining`` left."""
        nonlocal last_code
        result = codes.request_code(ACCOUNT)
        ok = isinstance(result, Issued) and result.remaining == remaining
        if isinstance(result, Issued):
            last_code = result.code
            until = f"{result.expires_at:%H:%M:%S}"
            ok = ok and result.expires_at == clock.now() + policy.code_ttl
            story.check(ok, key, code=result.code, until=until, remaining=result.remaining)
        else:
            story.check(False, key, code=story.msg(result), until="—", remaining="—", **fields)
        return last_code

    def refused(result: object, reason: Reason, **expected: object) -> bool:
        """Is ``result`` a refusal for ``reason`` with these field values?"""
        return (
            isinstance(result, Refused)
            and result.reason == reason
            and all(getattr(result, name) == value for name, value in expected.items())
        )

    # -- day 1, at home: the sheet's steps 1 to 6 ------------------------------------------------
    story.check(not codes.is_trusted_device(ACCOUNT, None, HOME_BROWSER), "password")
    first = request("first_code", per_hour - 1)
    clock.advance(minutes=1)
    typo = _spaced(first[:-1])
    result: Issued | Verified | Refused = codes.verify_code(ACCOUNT, typo)
    story.check(refused(result, Reason.MALFORMED_CODE), "typo", typed=typo, msg=story.msg(result))
    clock.advance(seconds=30)
    verified = codes.verify_code(
        ACCOUNT, _spaced(first), remember_device=True, fingerprint=HOME_BROWSER
    )
    token = verified.device_token if isinstance(verified, Verified) else None
    granted = clock.now()
    story.check(isinstance(token, str), "remember", typed=_spaced(first), token=(token or "—")[:8])

    # -- day 2: the same browser skips the code, another is asked again --------------------------
    clock.set(_START + timedelta(days=1, hours=-0.5))
    story.check(codes.is_trusted_device(ACCOUNT, token, HOME_BROWSER), "trusted")
    clock.set(_START + timedelta(days=1, hours=1))
    story.check(not codes.is_trusted_device(ACCOUNT, None, WORK_BROWSER), "other_browser")
    story.check(not codes.is_trusted_device(ACCOUNT, token, WORK_BROWSER), "copied_cookie")
    window_start = clock.now()
    code = request("code", per_hour - 1)
    clock.advance(policy.code_ttl)  # exactly 15:00.000 later: expired (R2.4)
    result = codes.verify_code(ACCOUNT, _spaced(code))
    story.check(
        refused(result, Reason.EXPIRED),
        "expired",
        typed=_spaced(code),
        msg=story.msg(result),
    )
    request("no_mail", per_hour - 2)
    for left in range(per_hour - 3, -1, -1):
        clock.advance(minutes=5)
        code = request("again", left)
    clock.advance(minutes=10)
    result = codes.request_code(ACCOUNT)
    wait = window_start + policy.code_window - clock.now()  # R1.3: oldest + window - now
    story.check(
        refused(result, Reason.TOO_MANY_CODES, retry_after=wait),
        "too_many",
        msg=story.msg(result),
    )
    clock.advance(minutes=1)
    result = codes.verify_code(ACCOUNT, _spaced(code))
    story.check(
        isinstance(result, Verified) and result.device_token is None,
        "spam",
        hint=SPAM_HINT[story.lang],
        typed=_spaced(code),
    )
    request("freed", 0)

    # -- day 3: ten wrong codes in a row lock the account (R2.6) ---------------------------------
    clock.set(_START + timedelta(days=2, hours=5))
    story.say("intruder")
    per_code = policy.max_attempts_per_code
    for guess in range(1, policy.max_failed_attempts + 1):
        attempt = (guess - 1) % per_code + 1  # the attempt with the current code
        if attempt == 1:  # 3 attempts per code: the intruder needs a new one
            code = request("intruder_code", per_hour - 1 - (guess - 1) // per_code)
        clock.advance(seconds=10)
        typed = _other_code(code, guess)
        result = codes.verify_code(ACCOUNT, typed)
        if guess == policy.max_failed_attempts:  # the 10th in a row: locked from now
            ok = refused(result, Reason.ACCOUNT_LOCKED, retry_after=policy.lockout)
        elif attempt == per_code:
            ok = refused(result, Reason.TOO_MANY_ATTEMPTS)
        else:
            ok = refused(result, Reason.WRONG_CODE, attempts_left=per_code - attempt)
        story.check(ok, "guess", n=guess, typed=typed, msg=story.msg(result))
    locked_at = clock.now()
    clock.set(locked_at + timedelta(hours=1))
    lock_left = locked_at + policy.lockout - clock.now()
    result = codes.request_code(ACCOUNT)
    story.check(
        refused(result, Reason.ACCOUNT_LOCKED, retry_after=lock_left),
        "locked_request",
        msg=story.msg(result),
    )
    result = codes.verify_code(ACCOUNT, code)
    story.check(
        refused(result, Reason.ACCOUNT_LOCKED, retry_after=lock_left),
        "locked_verify",
        msg=story.msg(result),
    )
    story.say("help")
    for line in help_lines(story.lang):
        story.raw(f"  - {line}")
    clock.advance(minutes=30)
    unlocked = codes.unlock(ACCOUNT)
    result = codes.verify_code(ACCOUNT, code)
    story.check(unlocked and refused(result, Reason.NO_CODE), "unlock", msg=story.msg(result))
    code = request("code", per_hour - 1)
    clock.advance(minutes=1)
    story.check(
        isinstance(codes.verify_code(ACCOUNT, _spaced(code)), Verified),
        "relogin",
        typed=_spaced(code),
    )

    _support_desk(story, codes, policy)

    # -- six months later: the trust of day 1 ends, to the millisecond (R3.2, R3.4) --------------
    trust_end = granted + policy.device_trust_ttl
    clock.set(trust_end - timedelta(milliseconds=1))
    story.check(codes.is_trusted_device(ACCOUNT, token, HOME_BROWSER), "still_trusted")
    clock.set(trust_end)
    story.check(not codes.is_trusted_device(ACCOUNT, token, HOME_BROWSER), "trust_over")


def _support_desk(story: _Story, codes: SecurityCodes, policy: Policy) -> None:
    """Paul locks himself out by mistyping, calls the desk, which inspects, revokes, unlocks."""
    clock = story.clock
    story.say("paul", account=PAUL)
    clock.set(datetime(2025, 3, 1, 18, 0, tzinfo=UTC))
    issued = codes.request_code(PAUL)
    home = _trust(codes, issued, PAUL_HOME)
    home_granted = clock.now()
    story.check(home is not None, "paul_home")
    clock.set(datetime(2025, 3, 4, 20, 0, tzinfo=UTC))
    laptop = _trust(codes, codes.request_code(PAUL), PAUL_LAPTOP)
    laptop_granted = clock.now()
    story.check(laptop is not None, "paul_laptop")

    # -- 10 wrong codes in a row: each well formed, so each is a guess (R2.1, R2.6) -------------
    clock.set(datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
    per_code, asked, ok = policy.max_attempts_per_code, 0, True
    code = "0" * policy.code_length
    result: Issued | Verified | Refused = Refused(reason=Reason.NO_CODE)
    for guess in range(1, policy.max_failed_attempts + 1):
        if (guess - 1) % per_code == 0:
            issued = codes.request_code(PAUL)
            ok = ok and isinstance(issued, Issued)
            code = issued.code if isinstance(issued, Issued) else code
            asked += 1
        clock.advance(seconds=20)
        result = codes.verify_code(PAUL, _other_code(code, guess))
        ok = ok and isinstance(result, Refused)
    locked_at = clock.now()
    lock_end = locked_at + policy.lockout
    ok = ok and isinstance(result, Refused) and result.reason == Reason.ACCOUNT_LOCKED
    story.check(ok, "paul_typos", n=policy.max_failed_attempts, codes=asked, msg=story.msg(result))
    clock.advance(minutes=5)
    story.check(codes.is_trusted_device(PAUL, home, PAUL_HOME), "paul_home_ok")

    # -- the desk: what `ameli-otp inspect` shows, then revoke and unlock -----------------------
    clock.advance(minutes=15)
    status = codes.inspect(PAUL)
    granted = [d.granted_at for d in status.devices]
    story.check(
        status.locked_until == lock_end
        and status.next_code_at == lock_end
        and status.codes_counting == asked
        and status.active_code is None  # the lock cancelled it (R2.6)
        and granted == [home_granted, laptop_granted],
        "desk_call",
        account=PAUL,
        until=f"{lock_end:%Y-%m-%d %H:%M:%S} UTC",
        codes=status.codes_counting,
        devices=len(status.devices),
    )
    ref = account_ref(codes, PAUL)
    for line in status_lines(status, clock.now(), story.lang, account=PAUL, ref=ref):
        story.raw(f"  | {line}")
    sold = status.devices[-1].device_id if status.devices else "-"
    revoked = codes.forget_device_id(PAUL, sold)
    left = [d.granted_at for d in codes.inspect(PAUL).devices]
    story.check(
        revoked and left == [home_granted],
        "desk_revoke",
        granted=f"{laptop_granted:%Y-%m-%d}",
        account=PAUL,
        device_id=sold,
    )
    first, second = codes.unlock(PAUL), codes.unlock(PAUL)
    story.check(first and not second, "desk_unlock", account=PAUL)

    # -- Paul gets a code again: the codes asked before the lock still count (R1.2) -------------
    clock.advance(minutes=2)
    issued = codes.request_code(PAUL)
    remaining = policy.max_unused_codes - asked - 1
    ok = isinstance(issued, Issued) and issued.remaining == remaining
    story.check(
        ok,
        "paul_code",
        code=issued.code if isinstance(issued, Issued) else story.msg(issued),
        remaining=remaining,
        counting=asked,
    )
    clock.advance(minutes=1)
    typed = _spaced(issued.code) if isinstance(issued, Issued) else "—"
    verified = codes.verify_code(PAUL, typed, remember_device=True, fingerprint=PAUL_NEW)
    story.check(isinstance(verified, Verified), "paul_login", typed=typed)
    story.check(not codes.is_trusted_device(PAUL, laptop, PAUL_LAPTOP), "laptop_gone")


def _trust(codes: SecurityCodes, issued: Issued | Refused, fingerprint: str) -> str | None:
    """Type the code just issued and tick the box: the device token, or None."""
    if not isinstance(issued, Issued):
        return None
    result = codes.verify_code(PAUL, issued.code, remember_device=True, fingerprint=fingerprint)
    return result.device_token if isinstance(result, Verified) else None


class _Tally:
    """The story's events counted: by ``prometheus_hook`` when prometheus-client is there."""

    def __init__(self) -> None:
        self._plain: collections.Counter[tuple[str, str]] | None = None
        try:
            from prometheus_client import CollectorRegistry

            from .metrics import prometheus_hook
        except ImportError:  # the base install has only attrs: count by hand
            plain: collections.Counter[tuple[str, str]] = collections.Counter()
            self._plain = plain
            self.hook: Callable[[Event], object] = lambda e: plain.update(
                [(str(e.kind), "" if e.reason is None else str(e.reason))]
            )
        else:
            self.registry = CollectorRegistry()
            self.hook = prometheus_hook(self.registry)

    @property
    def prometheus(self) -> bool:
        """Whether the counts are in a Prometheus registry."""
        return self._plain is None

    def count(self, kind: EventKind, reason: Reason | None = None) -> int:
        """How many events of ``kind`` (and ``reason``) were counted."""
        label = "" if reason is None else str(reason)
        if self._plain is not None:
            return self._plain[(str(kind), label)]
        labels = {"kind": str(kind), "reason": label, "factor": "email"}
        value = self.registry.get_sample_value("ameli_otp_events_total", labels)
        return 0 if value is None else int(value)

    def lines(self) -> list[str]:
        """The counts as the operators would read them."""
        if self._plain is not None:
            return [
                f"{kind} reason={reason or '-'}: {n}"
                for (kind, reason), n in sorted(self._plain.items())
            ]
        from prometheus_client import generate_latest

        scrape = generate_latest(self.registry).decode()
        return sorted(x for x in scrape.splitlines() if x.startswith("ameli_otp_events_total{"))


def _report(story: _Story, tally: _Tally) -> None:
    """The last chapter: the story as the operators' counters saw it, checked."""
    story.say("metrics" if tally.prometheus else "metrics_plain")
    for line in tally.lines():
        story.raw(f"  {line}")
    locked = tally.count(EventKind.ACCOUNT_LOCKED, Reason.ACCOUNT_LOCKED)
    unlocked = tally.count(EventKind.ACCOUNT_UNLOCKED)
    revoked = tally.count(EventKind.DEVICE_REVOKED)
    # the intruder's lock and Paul's, both lifted by the desk; Paul's second unlock and
    # the reads (inspect, is_trusted_device) report nothing
    story.check(
        (locked, unlocked, revoked) == (2, 2, 1),
        "metrics_check",
        locked=locked,
        unlocked=unlocked,
        revoked=revoked,
    )


def run(lang: str = "fr", out: TextIO | None = None) -> int:
    """Play the story in ``lang`` on ``out`` (default: standard output).

    Returns 0 if every step behaved as the rules say, 1 otherwise. Raises
    ``ValueError`` for a language not in :data:`ameli_otp.messages.LANGS`.
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(map(repr, LANGS))}, got {lang!r}")
    clock = FakeClock(_START)
    policy = Policy()
    tally = _Tally()
    codes = SecurityCodes(
        MemoryBackend(),
        secret=secrets.token_bytes(32),
        policy=policy,
        clock=clock,
        on_event=tally.hook,
    )
    story = _Story(sys.stdout if out is None else out, lang, clock)
    _print(story.out, story.text["title"])
    _play(story, codes, policy)
    _report(story, tally)
    story.summary()
    return 1 if story.failed else 0
