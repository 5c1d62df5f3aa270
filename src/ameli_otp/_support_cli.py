"""The support desk's commands of ``ameli-otp``: inspect, unlock, devices, revoke (RULES R9).

Each command reads or changes one account on the service's Redis store, with the
service's secret, and prints what it saw or changed: for people by default (in
French or English, ``--lang``), as one JSON object with ``--json`` (dates ISO 8601
in UTC, durations in seconds). The secret comes from ``--secret-file`` or the
``AMELI_OTP_SECRET`` variable, never from an argument: a command line lands in
shell history and in ``ps``.

Exit status: 0 done (or shown); 1 nothing to change (``unlock`` of an account with
no lock and no failures, ``revoke`` of a browser that is not trusted); 2 the command
cannot run (no secret, no URL, a bad argument); 3 the store failed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import BackendError, ConfigurationError
from ._facade import SecurityCodes
from ._status import AccountStatus, TrustedDevice
from .messages import LANGS, duration_words

if TYPE_CHECKING:
    from ._redis import RedisBackend

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOTHING",
    "EXIT_OK",
    "EXIT_USAGE",
    "SECRET_ENV",
    "URL_ENV",
    "account_ref",
    "add_commands",
    "parse_secrets",
    "status_lines",
]

EXIT_OK = 0
EXIT_NOTHING = 1  # unlock / revoke: nothing to change
EXIT_USAGE = 2  # as argparse: the command cannot run as given
EXIT_FAILED = 3  # the store failed (BackendError, ConfigurationError)

SECRET_ENV = "AMELI_OTP_SECRET"  # noqa: S105 - the name of a variable, not a secret
URL_ENV = "AMELI_OTP_REDIS_URL"

_MISSING_HELP = (
    "no secret: give --secret-file PATH or set {env}, one secret per line, newest first "
    "(the service's list; record names come from the last one). A secret is never taken "
    "as an argument: a command line lands in shell history and in ps."
)
_ARGUMENT_HELP = (
    "--secret is not an option: a secret on the command line lands in shell history and "
    "in ps (if that was a real secret, rotate it). Give --secret-file PATH or set {env}."
)

# -- what a person reads -------------------------------------------------------------------------
_TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "account": "Compte {account} (account_ref {ref}, son nom dans les événements)",
        "at": "État au {at}",
        "locked": "Bloqué :                 jusqu'au {until} (encore {left})",
        "not_locked": "Bloqué :                 non",
        "failures": "Échecs consécutifs :     {n}",
        "codes": "Codes dans la fenêtre :  {n}",
        "next_now": "Prochain code :          possible maintenant",
        "next_at": "Prochain code :          possible le {at} (dans {left})",
        "no_code": "Code en cours :          aucun",
        "code": (
            "Code en cours :          émis le {issued}, expire le {expires} ({state}), "
            "essais restants : {left}"
        ),
        "code_live": "encore {left}",
        "code_expired": "expiré",
        "devices": "Navigateurs de confiance : {n}",
        "no_devices": "Navigateurs de confiance : aucun",
        "device": "  {id}  de confiance depuis le {granted}, jusqu'au {expires}",
        "devices_head": "Navigateurs de confiance de {account} : {n}",
        "devices_none": "Aucun navigateur de confiance pour {account}.",
        "unlocked": "Débloqué : le blocage et le compte des échecs de {account} sont levés.",
        "not_unlocked": (
            "Rien à débloquer : {account} n'est pas bloqué et n'a pas d'échec qui compte."
        ),
        "revoked": "Révoqué : le navigateur {id} n'est plus de confiance pour {account}.",
        "not_revoked": (
            "Rien à révoquer : aucun navigateur de confiance {id} pour {account} "
            "(les identifiants sont listés par « ameli-otp devices »)."
        ),
        "all_revoked": "Révoqués : {n} navigateur(s) de confiance de {account}.",
        "none_revoked": "Rien à révoquer : {account} n'a aucun navigateur de confiance.",
    },
    "en": {
        "account": "Account {account} (account_ref {ref}, its name in the events)",
        "at": "State at {at}",
        "locked": "Locked:                until {until} ({left} left)",
        "not_locked": "Locked:                no",
        "failures": "Consecutive failures:  {n}",
        "codes": "Codes in the window:   {n}",
        "next_now": "Next code:             allowed now",
        "next_at": "Next code:             allowed at {at} (in {left})",
        "no_code": "Active code:           none",
        "code": (
            "Active code:           issued at {issued}, expires at {expires} ({state}), "
            "attempts left: {left}"
        ),
        "code_live": "{left} left",
        "code_expired": "expired",
        "devices": "Trusted browsers:      {n}",
        "no_devices": "Trusted browsers:      none",
        "device": "  {id}  trusted since {granted}, until {expires}",
        "devices_head": "Trusted browsers of {account}: {n}",
        "devices_none": "No trusted browser for {account}.",
        "unlocked": "Unlocked: the lock and the failure count of {account} are lifted.",
        "not_unlocked": "Nothing to unlock: {account} is not locked and has no failure counting.",
        "revoked": "Revoked: browser {id} is no longer trusted for {account}.",
        "not_revoked": (
            "Nothing to revoke: no trusted browser {id} for {account} "
            "(device ids are listed by `ameli-otp devices`)."
        ),
        "all_revoked": "Revoked: {n} trusted browser(s) of {account}.",
        "none_revoked": "Nothing to revoke: {account} has no trusted browser.",
    },
}


def _when(at: datetime) -> str:
    """``2025-03-11 09:12:30 UTC`` (milliseconds shown only when there are some)."""
    ms = at.microsecond // 1000
    return f"{at:%Y-%m-%d %H:%M:%S}" + (f".{ms:03d}" if ms else "") + " UTC"


def status_lines(
    status: AccountStatus, now: datetime, lang: str = "en", *, account: str, ref: str
) -> list[str]:
    """What ``ameli-otp inspect`` prints for ``status`` read at ``now``, line by line."""
    text = _TEXT[lang]

    def left(at: datetime) -> str:
        return duration_words(max(at - now, timedelta(0)), lang)

    lines = [text["account"].format(account=account, ref=ref), text["at"].format(at=_when(now))]
    if status.locked_until is None:
        lines.append(text["not_locked"])
    else:
        until = status.locked_until
        lines.append(text["locked"].format(until=_when(until), left=left(until)))
    lines.append(text["failures"].format(n=status.consecutive_failures))
    lines.append(text["codes"].format(n=status.codes_counting))
    if status.next_code_at is None:
        lines.append(text["next_now"])
    else:
        at = status.next_code_at
        lines.append(text["next_at"].format(at=_when(at), left=left(at)))
    code = status.active_code
    if code is None:
        lines.append(text["no_code"])
    else:
        if now < code.expires_at:
            state = text["code_live"].format(left=left(code.expires_at))
        else:
            state = text["code_expired"]
        lines.append(
            text["code"].format(
                issued=_when(code.issued_at),
                expires=_when(code.expires_at),
                state=state,
                left=code.attempts_left,
            )
        )
    if status.devices:
        lines.append(text["devices"].format(n=len(status.devices)))
        lines.extend(_device_lines(status.devices, lang))
    else:
        lines.append(text["no_devices"])
    return lines


def _device_lines(devices: Sequence[TrustedDevice], lang: str) -> list[str]:
    line = _TEXT[lang]["device"]
    return [
        line.format(id=d.device_id, granted=_when(d.granted_at), expires=_when(d.expires_at))
        for d in devices
    ]


# -- what a machine reads ------------------------------------------------------------------------
def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="milliseconds")


def _seconds(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else round(max((at - now).total_seconds(), 0.0), 3)


def _device_json(d: TrustedDevice) -> dict[str, Any]:
    return {
        "device_id": d.device_id,
        "granted_at": _iso(d.granted_at),
        "expires_at": _iso(d.expires_at),
    }


def _status_json(status: AccountStatus, now: datetime) -> dict[str, Any]:
    code = status.active_code
    return {
        "locked": status.locked_until is not None,
        "locked_until": _iso(status.locked_until),
        "lock_left_seconds": _seconds(status.locked_until, now),
        "consecutive_failures": status.consecutive_failures,
        "codes_counting": status.codes_counting,
        "next_code_at": _iso(status.next_code_at),
        "next_code_in_seconds": _seconds(status.next_code_at, now),
        "active_code": None
        if code is None
        else {
            "issued_at": _iso(code.issued_at),
            "expires_at": _iso(code.expires_at),
            "expired": now >= code.expires_at,
            "attempts_left": code.attempts_left,
        },
        "devices": [_device_json(d) for d in status.devices],
    }


# -- the secret and the store --------------------------------------------------------------------
class _Usage(Exception):
    """The command cannot run as given: exit status 2, the message on stderr."""


def parse_secrets(text: str, where: str) -> list[str | bytes]:
    """The secrets of ``text``: one per line, newest first, as the service passes them.

    A line is taken as it is (a ``str`` secret, UTF-8), without its line ending;
    empty lines are skipped. A line ``hex:...`` or ``base64:...`` is decoded to the
    bytes of a ``bytes`` secret (``secrets.token_bytes(32)`` kept as text). Raises
    ``_Usage`` naming ``where`` (never quoting a secret) when there is none or a line
    does not decode.
    """
    found: list[str | bytes] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        try:
            if line.startswith("hex:"):
                found.append(bytes.fromhex(line[4:]))
            elif line.startswith("base64:"):
                data = line[7:].replace("-", "+").replace("_", "/")
                found.append(base64.b64decode(data + "=" * (-len(data) % 4), validate=True))
            else:
                found.append(line)
        except (ValueError, binascii.Error):
            raise _Usage(f"{where}, line {number}: not valid {line.split(':', 1)[0]}") from None
    if not found:
        raise _Usage(f"{where} holds no secret")
    return found


def _secrets_of(args: argparse.Namespace) -> list[str | bytes]:
    if args.secret_file is not None:
        path = Path(args.secret_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise _Usage(f"cannot read the secret file {str(path)!r}: {why}") from None
        return parse_secrets(text, f"the secret file {str(path)!r}")
    value = os.environ.get(SECRET_ENV)
    if not value:
        raise _Usage(_MISSING_HELP.format(env=SECRET_ENV))
    return parse_secrets(value, SECRET_ENV)


def _codes(args: argparse.Namespace, now: float) -> tuple[SecurityCodes, RedisBackend]:
    secret = _secrets_of(args)  # first: without it nothing can be named
    url = args.redis_url or os.environ.get(URL_ENV)
    if not url:
        raise _Usage(f"no store: give --redis-url URL or set {URL_ENV}")
    try:
        from ._redis import RedisBackend
    except ImportError:
        raise _Usage("the support commands need redis-py: pip install 'ameli-otp[redis]'") from None
    backend = RedisBackend.from_url(url, prefix=args.prefix, cluster=args.cluster)
    try:
        # one clock reading for the whole command: what is shown is the store at that instant
        return SecurityCodes(backend, secret=secret, clock=lambda: now), backend
    except BaseException:
        backend.client.close()
        raise


def account_ref(codes: SecurityCodes, account: str) -> str:
    """The account's ``account_ref``, as in the events (R9.3), to find it in the logs."""
    return codes.account_ref(account)


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (BackendError, ConfigurationError)
    try:
        from redis.exceptions import RedisClusterException, RedisError
    except ImportError:
        return errors
    # a cluster client connects when it is built, and raises redis-py's own errors then
    return (*errors, RedisError, RedisClusterException)


# -- the commands --------------------------------------------------------------------------------
class _Reply:
    """The command's output: text lines for people, or one JSON object."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.json: bool = args.json
        self.lang: str = args.lang
        self.text = _TEXT[args.lang]
        self.out = out

    def say(self, lines: Sequence[str], data: dict[str, Any]) -> None:
        if self.json:
            self._print(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            for line in lines:
                self._print(line)

    def _print(self, text: str) -> None:
        """A terminal that cannot show « é » gets ``?`` instead of a crash (as the demo)."""
        try:
            print(text, file=self.out)
        except UnicodeEncodeError:
            encoding = getattr(self.out, "encoding", None) or "ascii"
            print(text.encode(encoding, "replace").decode(encoding), file=self.out)


_Action = Callable[[SecurityCodes, argparse.Namespace, _Reply, datetime, str], int]


def _inspect(
    codes: SecurityCodes, args: argparse.Namespace, reply: _Reply, now: datetime, ref: str
) -> int:
    status = codes.inspect(args.account)
    lines = status_lines(status, now, reply.lang, account=args.account, ref=ref)
    reply.say(lines, {"account_ref": ref, "at": _iso(now), **_status_json(status, now)})
    return EXIT_OK


def _devices(
    codes: SecurityCodes, args: argparse.Namespace, reply: _Reply, now: datetime, ref: str
) -> int:
    devices = codes.inspect(args.account).devices
    text, account = reply.text, args.account
    if devices:
        lines = [text["devices_head"].format(account=account, n=len(devices))]
        lines.extend(_device_lines(devices, reply.lang))
    else:
        lines = [text["devices_none"].format(account=account)]
    data = {"account_ref": ref, "at": _iso(now), "devices": [_device_json(d) for d in devices]}
    reply.say(lines, data)
    return EXIT_OK


def _unlock(
    codes: SecurityCodes, args: argparse.Namespace, reply: _Reply, now: datetime, ref: str
) -> int:
    changed = codes.unlock(args.account)
    line = reply.text["unlocked" if changed else "not_unlocked"].format(account=args.account)
    reply.say([line], {"account_ref": ref, "at": _iso(now), "unlocked": changed})
    return EXIT_OK if changed else EXIT_NOTHING


def _revoke(
    codes: SecurityCodes, args: argparse.Namespace, reply: _Reply, now: datetime, ref: str
) -> int:
    text, account = reply.text, args.account
    data: dict[str, Any] = {"account_ref": ref, "at": _iso(now)}
    if args.all:
        count = codes.forget_all_devices(account)
        line = text["all_revoked" if count else "none_revoked"].format(account=account, n=count)
        reply.say([line], {**data, "revoked": count})
        return EXIT_OK if count else EXIT_NOTHING
    changed = codes.forget_device_id(account, args.device_id)
    line = text["revoked" if changed else "not_revoked"].format(account=account, id=args.device_id)
    reply.say([line], {**data, "device_id": args.device_id, "revoked": int(changed)})
    return EXIT_OK if changed else EXIT_NOTHING


def _runner(action: _Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return _run(action, args)

    return run


def _run(action: _Action, args: argparse.Namespace) -> int:
    """Build the store and the facade, run ``action``; turn failures into exit statuses."""
    name = f"ameli-otp {args.command}"
    if args.command == "revoke" and (args.device_id is None) == (not args.all):
        return _error(name, "give either a DEVICE_ID or --all", EXIT_USAGE)
    now = time.time()
    backend: RedisBackend | None = None
    try:
        codes, backend = _codes(args, now)
        ref = account_ref(codes, args.account)  # a bad account id is refused here, before the store
        return action(codes, args, _Reply(args, sys.stdout), datetime.fromtimestamp(now, UTC), ref)
    except _Usage as exc:
        return _error(name, str(exc), EXIT_USAGE)
    except _store_errors() as exc:
        return _error(name, f"the store failed: {exc}", EXIT_FAILED)
    except (TypeError, ValueError) as exc:  # a bad URL, prefix, secret or account id
        return _error(name, str(exc), EXIT_USAGE)
    finally:
        if backend is not None:
            backend.client.close()


def _error(name: str, message: str, status: int) -> int:
    print(f"{name}: error: {message}", file=sys.stderr)
    return status


class _RefuseSecret(argparse.Action):
    """``--secret``: refused with the reason, the value never echoed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        parser.error(_ARGUMENT_HELP.format(env=SECRET_ENV))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help=f"the service's Redis store, redis://host:6379/0 (default: ${URL_ENV})",
    )
    parser.add_argument(
        "--prefix",
        default="ameli-otp",
        help="the prefix of the service's keys (default: %(default)s)",
    )
    parser.add_argument(
        "--cluster", action="store_true", help="the store is a Redis Cluster (any node's URL)"
    )
    parser.add_argument(
        "--secret-file",
        metavar="PATH",
        help=(
            f"the service's secrets, one per line, newest first (default: ${SECRET_ENV}); "
            "hex:... and base64:... lines are bytes secrets"
        ),
    )
    parser.add_argument("--secret", nargs="?", action=_RefuseSecret, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--lang",
        choices=LANGS,
        default=LANGS[0],
        help="the language of the text output (default: %(default)s)",
    )
    parser.add_argument("account", metavar="ACCOUNT", help="the account id, as the service gets it")


_EPILOG = (
    "exit status: 0 done, 1 nothing to change, 2 cannot run (no secret, no URL, a bad "
    "argument), 3 the store failed. The secret is never an argument: a command line "
    f"lands in shell history and in ps; use --secret-file or ${SECRET_ENV}."
)


def add_commands(commands: Any) -> None:
    """Add ``inspect``, ``unlock``, ``devices`` and ``revoke`` to the subparsers ``commands``."""
    specs: list[tuple[str, str, _Action]] = [
        ("inspect", "show an account's lock, codes and trusted browsers; change nothing", _inspect),
        ("unlock", "lift an account's lock and clear its failure count", _unlock),
        ("devices", "list an account's trusted browsers and their device ids", _devices),
        ("revoke", "stop trusting one browser (DEVICE_ID) or all of them (--all)", _revoke),
    ]
    for name, help_text, action in specs:
        parser = commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ", on the service's Redis store.",
            epilog=_EPILOG,
            allow_abbrev=False,  # --secret must never be read as --secret-file
        )
        _common(parser)
        if name == "revoke":
            parser.add_argument(
                "device_id", metavar="DEVICE_ID", nargs="?", help="a device id from `devices`"
            )
            parser.add_argument("--all", action="store_true", help="revoke every trusted browser")
        parser.set_defaults(handler=_runner(action))
