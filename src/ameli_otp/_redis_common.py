"""What the sync and async Redis stores share: key names, script texts, arguments, errors.

Each store primitive is one Lua script (``lua/*.lua``, each opening with its
contract), run with EVALSHA by its SHA1, computed here, and loaded with SCRIPT
LOAD only after a ``NoScriptError``: one round trip per operation. An account is one
hash, named with the account's keyed hash as its hash tag; a limiter key is one sorted
set: a script touches one key, so one cluster slot. Times travel as ARGV in integer
milliseconds; PEXPIRE only reclaims memory, ``SLACK_MS`` after the last moment a rule
could need a key.
"""

from __future__ import annotations

import hashlib
import secrets
from importlib import resources
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from ._errors import BackendError
from ._policy import Limits

__all__ = [
    "SCRIPTS",
    "SHAS",
    "SLACK_MS",
    "SOURCES",
    "KeyNames",
    "backend_error",
    "check_client",
    "issue_args",
    "new_entry",
    "outcome",
    "pair",
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


def script_source(name: str) -> str:
    """The text of one script, with the shared helpers of ``_lib.lua`` in front."""
    lua = resources.files("ameli_otp").joinpath("lua")
    return lua.joinpath("_lib.lua").read_text("utf-8") + lua.joinpath(f"{name}.lua").read_text(
        "utf-8"
    )


#: name -> the full text of each script (helpers included), and its SHA1 for EVALSHA
SOURCES = {name: script_source(name) for name in SCRIPTS}
SHAS = {
    name: hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()
    for name, text in SOURCES.items()
}


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

    def state(self, account: str) -> list[str]:
        """``[state]``: the one key of an account (its hash tag: one cluster slot)."""
        return [f"{self.prefix}:{{{account}}}:s"]

    def window(self, key: str) -> list[str]:
        """``[window]`` of a limiter key."""
        return [f"{self.prefix}:l:{{{key}}}"]


def new_entry() -> str:
    """A fresh id, 48 random bits in 8 URL-safe characters: a limiter entry, or a request.

    Ids only need to differ among the entries of one window, or from the one request
    before on the same account (a clash among five has odds of about 1e-14); short ids
    keep keys small.
    """
    return secrets.token_urlsafe(6)


def issue_args(now: int, limits: Limits, request: str, code_hash: bytes) -> list[Any]:
    """ARGV of ``issue_code.lua``; ``request`` is a fresh ``new_entry()``, to spot a retry."""
    return [now, limits.code_window, limits.max_unused_codes, request, code_hash, SLACK_MS]


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


def outcome(reply: Any) -> tuple[int, int]:
    """A decision script's one-integer reply, ``value * 8 + kind``, as ``(kind, value)``."""
    reply = int(reply)
    return reply & 7, reply >> 3


def pair(reply: Any) -> tuple[int, int]:
    """A script's ``{a, b}`` reply as ints."""
    return int(reply[0]), int(reply[1])


def backend_error(what: str, exc: Exception) -> BackendError:
    """The :class:`BackendError` to raise (chained) for any failure of redis-py or the network.

    Fail closed on the client's own bugs too: whatever the exception, the caller gets a
    ``BackendError``, never a result.
    """
    if isinstance(exc, RedisError | RedisClusterException | OSError):
        return BackendError(f"Redis store failed during {what}: {exc}")
    return BackendError(f"Redis client failed during {what}: {exc!r}")
