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

import asyncio
import hashlib
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from importlib import resources
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from ._errors import BackendError, ConfigurationError
from ._policy import DAY_MS, SLACK_MS, Limits
from ._rules import issue_span
from ._status import EMPTY, Raw

__all__ = [
    "CHECK_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "POOL_TIMEOUT",
    "SCRIPTS",
    "SHAS",
    "SLACK_MS",
    "SOCKET_TIMEOUT",
    "SOURCES",
    "AsyncGate",
    "Gate",
    "KeyNames",
    "backend_error",
    "check_client",
    "check_memory_policy",
    "check_prefix",
    "check_timeout",
    "config_refused",
    "describe",
    "issue_args",
    "may_have_run",
    "new_entry",
    "outcome",
    "pair",
    "raw_status",
    "script_source",
    "text_or_none",
    "track",
    "verify_args",
]

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
    "inspect",
    "totp_read",
    "totp_enroll",
    "totp_confirm",
    "totp_verify",
    "totp_remove",
    "recovery_replace",
    "recovery_use",
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

    def changed(self, account: str) -> list[str]:
        """``[state, replay record]`` for a script that changes the account (R8.1)."""
        return [f"{self.prefix}:{{{account}}}:s", f"{self.prefix}:{{{account}}}:q"]

    def inspect(self, account: str) -> list[str]:
        """``[state, authenticator, recovery codes]``: everything ``inspect`` reads."""
        p = f"{self.prefix}:{{{account}}}"
        return [f"{p}:s", f"{p}:a", f"{p}:r"]

    def authenticator(self, account: str) -> list[str]:
        """``[authenticator]`` (R11): enrollments, never expired while one is confirmed."""
        return [f"{self.prefix}:{{{account}}}:a"]

    def enrolled(self, account: str) -> list[str]:
        """``[authenticator, replay record]`` for enrolling and removing (R11.1)."""
        p = f"{self.prefix}:{{{account}}}"
        return [f"{p}:a", f"{p}:q"]

    def totp(self, account: str) -> list[str]:
        """``[state, replay record, authenticator]`` for an authenticator check (R11.2)."""
        p = f"{self.prefix}:{{{account}}}"
        return [f"{p}:s", f"{p}:q", f"{p}:a"]

    def recovery(self, account: str) -> list[str]:
        """``[state, replay record, recovery codes]`` for using a recovery code (R12.2)."""
        p = f"{self.prefix}:{{{account}}}"
        return [f"{p}:s", f"{p}:q", f"{p}:r"]

    def recovery_set(self, account: str) -> list[str]:
        """``[recovery codes, replay record]`` for a new set (R12.1)."""
        p = f"{self.prefix}:{{{account}}}"
        return [f"{p}:r", f"{p}:q"]

    def window(self, key: str) -> list[str]:
        """``[window]`` of a limiter key."""
        return [f"{self.prefix}:l:{{{key}}}"]

    def window_changed(self, key: str) -> list[str]:
        """``[window, replay record]`` of a limiter key, for ``window_reset`` (R8.1)."""
        return [f"{self.prefix}:l:{{{key}}}", f"{self.prefix}:l:{{{key}}}:q"]


def new_entry() -> str:
    """A fresh id, 48 random bits in 8 URL-safe characters: a limiter entry, or a request.

    Ids only need to differ among the entries of one window, or from the one request
    before on the same account (a clash among five has odds of about 1e-14); short ids
    keep keys small.
    """
    return secrets.token_urlsafe(6)


def issue_args(now: int, limits: Limits, request: str, code_hash: bytes) -> list[Any]:
    """ARGV of ``issue_code.lua``; ``request`` is a fresh ``new_entry()``, to spot a retry."""
    return [
        now,
        limits.code_window,
        limits.max_unused_codes,
        request,
        code_hash,
        SLACK_MS,
        limits.max_codes_per_day,
        limits.resend_interval,
        DAY_MS,
        issue_span(limits),
    ]


def verify_args(
    now: int, limits: Limits, request: str, candidates: tuple[bytes, ...], device: str | None
) -> list[Any]:
    """ARGV of ``verify_code.lua``; ``request`` is a fresh ``new_entry()``, to spot a retry."""
    return [
        now,
        limits.code_window,
        limits.code_ttl,
        limits.max_attempts_per_code,
        limits.max_failed_attempts,
        limits.lockout,
        limits.device_trust_ttl,
        SLACK_MS,
        request,
        device or "",
        limits.max_trusted_devices,
        *candidates,
    ]


def raw_status(reply: Any) -> Raw:
    """``inspect.lua``'s reply (the account hash's fields, then the other factors) as a
    :class:`~ameli_otp._status.Raw`.

    The field layout is the one of ``issue_code.lua``'s header; the window ``w`` is packed
    as ``_lib.lua`` writes it (hexadecimal times, comma-separated, ``-`` for negative ones).
    """
    state, authenticator, recovery = reply
    confirmed, codes = bool(authenticator), int(recovery)
    fields = {bytes(k): bytes(v) for k, v in zip(state[::2], state[1::2], strict=True)}
    if not fields:
        return EMPTY._replace(authenticator=confirmed, recovery_codes=codes)
    code = fields.get(b"h") is not None and fields.get(b"t") is not None
    return Raw(
        lock_until=int(fields.get(b"u", 0)),
        failures=int(fields.get(b"n", 0)),
        last_failure=int(fields.get(b"l", 0)),
        window=tuple(int(x, 16) for x in fields.get(b"w", b"").split(b",") if x),
        code_issued=int(fields[b"t"]) if code else None,
        code_failures=int(fields.get(b"f", 0)) if code else 0,
        devices=tuple(
            (name[2:].decode("ascii"), int(value))
            for name, value in fields.items()
            if name.startswith(b"d:")
        ),
        day=tuple(int(x, 16) for x in fields.get(b"y", b"").split(b",") if x),
        last_issued=int(fields.get(b"i", 0)),
        authenticator=confirmed,
        recovery_codes=codes,
    )


def text_or_none(reply: Any) -> str | None:
    """A bulk string reply as text; a nil (Lua false) as None."""
    return None if reply is None else bytes(reply).decode("ascii")


def outcome(reply: Any) -> tuple[int, int]:
    """A decision script's one-integer reply, ``value * 16 + kind``, as ``(kind, value)``."""
    reply = int(reply)
    return reply & 15, reply >> 4


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


# -- R8.3: the clients that from_url builds ------------------------------------------------------
#: the defaults of ``from_url``: an unreachable server fails within about a second, and a burst
#: of calls waits for one of the pooled connections (see docs/redis.md, "Clients")
CONNECT_TIMEOUT = 0.5  # s: to open a connection
SOCKET_TIMEOUT = 0.5  # s: for a reply (our scripts run in microseconds)
POOL_TIMEOUT = 5.0  # s: for a free connection when all are in use (a busy process is slow)
MAX_CONNECTIONS = 50  # per store (per node on a cluster)
CHECK_TIMEOUT = POOL_TIMEOUT  # s a call waits while another checks the server (R8.2)


class _GateBase:
    """What :class:`Gate` and :class:`AsyncGate` share: their size, wait and down state."""

    __slots__ = ("_down_until", "busy", "down_for", "size", "timeout")

    def __init__(self, size: int, timeout: float, busy: str = "", down_for: float = 0.0) -> None:
        self.size = size
        self.timeout = timeout
        self.busy = busy  # what the wait was for, in the error
        self.down_for = down_for
        self._down_until = 0.0

    def down(self) -> None:
        """A connection could not be opened: fail the calls of the next ``down_for`` s at once.

        The calls queued behind a dead server would otherwise each wait their turn, then
        their own ``connect_timeout``: the last of a burst long after the first knew.
        """
        self._down_until = time.monotonic() + self.down_for

    def check(self) -> None:
        """``BackendError`` if a connection failed less than ``down_for`` s ago."""
        if self._down_until and time.monotonic() < self._down_until:
            raise BackendError(
                f"Redis store unreachable: a connection to it could not be opened less "
                f"than {self.down_for} s ago"
            )

    def overloaded(self) -> BackendError:
        """The error of a call that waited ``timeout`` s for its turn."""
        busy = self.busy or (
            f"overloaded: all {self.size} connections stayed busy (from_url max_connections)"
        )
        return BackendError(f"Redis store {busy} for {self.timeout} s")


class Gate(_GateBase):
    """At most ``size`` calls in flight; a call waits up to ``timeout`` s for its turn.

    redis-py 8's pools raise as soon as they are full (``MaxConnectionsError``), and its
    asyncio cluster client has no blocking pool at all: the store queues its own calls
    instead, the same way on every client, so that a burst waits rather than fails.
    """

    __slots__ = ("_free",)

    def __init__(self, size: int, timeout: float, busy: str = "", down_for: float = 0.0) -> None:
        super().__init__(size, timeout, busy, down_for)
        self._free = threading.BoundedSemaphore(size)

    def enter(self) -> None:
        """Wait for a free slot; ``BackendError`` after ``timeout`` s."""
        if not self._free.acquire(timeout=self.timeout):
            raise self.overloaded()

    def exit(self) -> None:
        """Give the slot back."""
        self._free.release()


class AsyncGate(_GateBase):
    """:class:`Gate` for asyncio tasks (bound to the first event loop that uses it)."""

    __slots__ = ("_free",)

    def __init__(self, size: int, timeout: float, busy: str = "", down_for: float = 0.0) -> None:
        super().__init__(size, timeout, busy, down_for)
        self._free = asyncio.Semaphore(size)

    async def enter(self) -> None:
        """Wait for a free slot; ``BackendError`` after ``timeout`` s."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._free.acquire()
        except TimeoutError:
            raise self.overloaded() from None

    def exit(self) -> None:
        """Give the slot back."""
        self._free.release()


def check_timeout(name: str, value: object) -> float:
    """A timeout in seconds: a positive ``int`` or ``float``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def describe(client: Any) -> str:
    """Where a client connects, for messages: ``host:port`` or the cluster."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if kwargs is None:
        return "the cluster (every node)"
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def may_have_run(exc: Exception) -> bool:
    """Whether a call that failed with ``exc`` may have reached the server (R8.1, R8.3).

    A failure to connect sent nothing: retrying it would only double the wait on a dead
    server. Any other connection failure or timeout may have lost the reply of a script
    that ran: the store sends it once more, which the scripts recognise (request ids).
    redis-py words every failure to connect "... connecting to ..." (``Error 111 connecting
    to host:port``, ``Timeout connecting to server``), in every version we test.
    """
    return "connecting to" not in str(exc)


# -- R8.2: a server that may evict keys is refused ------------------------------------------------
log = logging.getLogger("ameli_otp")


def check_memory_policy(reply: Any, where: str) -> None:
    """Raise ``ConfigurationError`` if a ``CONFIG GET maxmemory-policy`` reply may evict.

    ``reply`` is what redis-py returns: a mapping of the setting to its value, or on a
    cluster a mapping of node names to such mappings (every node is checked).
    """
    for node, policy in _policies(reply, where):
        if policy != "noeviction":
            raise ConfigurationError(
                f"the Redis server at {node} has maxmemory-policy {policy}: it may evict "
                "keys, and an attacker who fills its memory would lift locks and limits. "
                "Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, or "
                "in redis.conf), or pass allow_eviction=True if you accept that risk"
            )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _policies(reply: Any, where: str) -> list[tuple[str, str]]:
    """``(server, policy)`` of every server in the reply."""
    if isinstance(reply, list | tuple):  # [name, value] as sent by the server
        reply = dict(zip(reply[::2], reply[1::2], strict=True))
    if not isinstance(reply, Mapping) or not reply:
        raise BackendError(f"unexpected reply to CONFIG GET maxmemory-policy: {reply!r}")
    found = []
    for key, value in reply.items():
        if _text(key) == "maxmemory-policy":
            found.append((where, _text(value)))
        else:  # a cluster's reply: node name -> that node's reply
            found.extend(_policies(value, _text(key)))
    return found


_warned: set[str] = set()


def config_refused(exc: Exception, where: str) -> None:
    """The server would not say its eviction policy (a managed service without CONFIG): warn."""
    if where not in _warned:
        _warned.add(where)
        log.warning(
            "ameli_otp could not check the eviction policy of the Redis server at %s (%s): "
            "make sure it is noeviction, or locks and limits may be evicted (docs/redis.md)",
            where,
            exc,
        )


# Each store checks the server once per process (R8.2): a child after fork checks again.
_stores: weakref.WeakSet[Any] = weakref.WeakSet()


def track(store: Any) -> None:
    """Make ``store`` check its server again in a child process after ``fork``."""
    _stores.add(store)


def _forked() -> None:
    for store in list(_stores):
        store._checked = store._allow_eviction


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forked)
