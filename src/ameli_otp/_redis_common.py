"""What the sync and async Redis stores share: key names, script texts, arguments, errors.

Each store primitive is one Lua script (``lua/*.lua``, each opening with its
contract), registered with redis-py's ``register_script`` (EVALSHA, reloaded on
``NoScriptError``): one round trip per operation. Every key of one account
carries the account's keyed hash as its hash tag, so a script touches one
cluster slot. Times travel as ARGV in integer milliseconds; PEXPIRE only
reclaims memory, ``SLACK_MS`` after the last moment a rule could need a key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from ._errors import BackendError
from ._policy import Limits

__all__ = [
    "SCRIPTS",
    "SLACK_MS",
    "KeyNames",
    "backend_errors",
    "check_client",
    "issue_args",
    "new_entry",
    "pair",
    "register_scripts",
    "script_source",
    "verify_args",
]

#: kept past the last moment a rule could need a key: covers clock skew between app servers
SLACK_MS = 60_000

SCRIPTS = (
    "window_hit",
    "window_peek",
    "window_release",
    "window_reset",
    "issue_code",
    "verify_code",
    "device_trusted",
    "forget_device",
    "forget_all_devices",
    "unlock",
)

T = TypeVar("T")


def script_source(name: str) -> str:
    """The text of one script, with the shared helpers of ``_lib.lua`` in front."""
    lua = resources.files("ameli_otp").joinpath("lua")
    return lua.joinpath("_lib.lua").read_text("utf-8") + lua.joinpath(f"{name}.lua").read_text(
        "utf-8"
    )


def register_scripts(register: Callable[[str], T]) -> dict[str, T]:
    """Every script, registered with ``client.register_script``."""
    return {name: register(script_source(name)) for name in SCRIPTS}


def check_prefix(prefix: object) -> str:
    """A key prefix: a non-empty str without braces (they would change the hash tags)."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(f"prefix must be non-empty and contain no braces, got {prefix!r}")
    return prefix


def check_client(client: object, *, want_async: bool) -> None:
    """Refuse a client of the wrong face or something that is not a redis-py client."""
    import redis.asyncio
    import redis.asyncio.cluster

    if not callable(getattr(client, "register_script", None)):
        raise TypeError(
            f"client must be a redis-py Redis or RedisCluster, not {type(client).__name__}"
        )
    is_async = isinstance(client, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster)
    if is_async != want_async:
        backend = "AsyncRedisBackend" if is_async else "RedisBackend"
        raise TypeError(
            f"client is {'an asyncio' if is_async else 'a sync'} redis-py client: "
            f"use {backend} with it"
        )


class KeyNames:
    """The Redis key names of one store prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: object) -> None:
        self.prefix = check_prefix(prefix)

    def account(self, account: str) -> list[str]:
        """``[window, state]`` of an account: one hash tag, so one cluster slot."""
        base = f"{self.prefix}:{{{account}}}:"
        return [base + "w", base + "s"]

    def state(self, account: str) -> list[str]:
        """``[state]`` of an account."""
        return [f"{self.prefix}:{{{account}}}:s"]

    def window(self, key: str) -> list[str]:
        """``[window]`` of a limiter key."""
        return [f"{self.prefix}:l:{{{key}}}"]


def new_entry() -> str:
    """A fresh window entry id: 48 random bits, 8 URL-safe characters.

    Ids only need to differ among the few entries of one window (a clash among
    five live entries has odds of about 1e-14); short ids keep an account small.
    """
    return secrets.token_urlsafe(6)


def issue_args(now: int, limits: Limits, entry: str, code_hash: bytes) -> list[Any]:
    """ARGV of ``issue_code.lua``."""
    return [now, limits.code_window, limits.max_unused_codes, entry, code_hash, SLACK_MS]


def verify_args(
    now: int, limits: Limits, candidates: tuple[bytes, ...], device: str | None
) -> list[Any]:
    """ARGV of ``verify_code.lua``."""
    return [
        now,
        limits.code_window,
        limits.code_ttl,
        limits.max_attempts_per_code,
        limits.max_failed_attempts,
        limits.lockout,
        limits.device_trust_ttl,
        SLACK_MS,
        device or "",
        *candidates,
    ]


def pair(reply: Any) -> tuple[int, int]:
    """A script's ``{kind, value}`` reply as ints."""
    return int(reply[0]), int(reply[1])


@contextmanager
def backend_errors(what: str) -> Iterator[None]:
    """Turn any failure of redis-py or the network into :class:`BackendError` (chained)."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:
        raise BackendError(f"Redis store failed during {what}: {exc}") from exc
    except Exception as exc:  # fail closed on the client's own bugs too
        raise BackendError(f"Redis client failed during {what}: {exc!r}") from exc
