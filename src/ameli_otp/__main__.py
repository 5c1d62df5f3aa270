"""The ``ameli-otp`` command (also ``python -m ameli_otp``).

Subcommands:

``demo [--lang fr|en]``
    Play the practical sheet's whole story on the in-memory store with a
    simulated clock, checking every step against the rules; exit status 0 only
    if every step behaved as the rules say.

``inspect ACCOUNT``, ``unlock ACCOUNT``, ``devices ACCOUNT``, ``revoke ACCOUNT DEVICE_ID|--all``
    The support desk's commands, on the service's Redis store (``--redis-url``,
    the secret from ``--secret-file`` or ``AMELI_OTP_SECRET``, never an argument);
    ``--json`` for machines. In ``_support_cli.py``; see docs/support.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import __version__
from ._support_cli import add_commands
from .messages import LANGS

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run

    return run(lang=args.lang)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ameli-otp",
        description="The security-code rules of the ameli login page.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="play the practical sheet's story, checking each step against the rules",
        description=(
            "Play the practical sheet's whole story (codes, the hour's limit, trusted "
            "browsers, the lock, the support desk) on the in-memory store with a simulated "
            "clock. Exit status 0 only if every step behaved as the rules say."
        ),
    )
    demo.add_argument(
        "--lang",
        choices=LANGS,
        default=LANGS[0],
        help="the language of the story and of the messages (default: %(default)s)",
    )
    demo.set_defaults(handler=_demo)
    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    A bad command line makes argparse print the usage and raise ``SystemExit(2)``.
    """
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
