"""The Redis and Redis Cluster store: each primitive one Lua script, one round trip.

This file is the source of ``_async_redis.py`` (``tools/gen_async.py``); keep
every method to: names and arguments (``_redis_common``), one ``self._call``.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from ._policy import Limits
from ._redis_common import (
    SHAS,
    SLACK_MS,
    SOURCES,
    KeyNames,
    backend_error,
    check_client,
    issue_args,
    new_entry,
    outcome,
    pair,
    verify_args,
)

__all__ = ["RedisBackend"]


class RedisBackend:
    """A store on Redis (>= 6.2) or Valkey (>= 7.2), standalone or cluster.

    ``client`` is a ``redis.Redis`` or a ``redis.cluster.RedisCluster``; all keys
    start with ``prefix``. Every operation is one EVALSHA; any failure of the
    client or the server raises :class:`~ameli_otp.BackendError`.
    """

    __slots__ = ("_client", "_execute", "_keys")

    def __init__(self, client: Redis | RedisCluster, prefix: str = "ameli-otp") -> None:
        check_client(client, want_async=False)
        self._client = client
        self._keys = KeyNames(prefix)
        # typed through Any: redis-py leaves RedisCluster.execute_command untyped
        self._execute: Any = client.execute_command

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client."""
        return self._client

    @property
    def prefix(self) -> str:
        """The prefix of every key."""
        return self._keys.prefix

    def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA the script ``name``; SCRIPT LOAD it and retry once if the server lacks it.

        ``execute_command`` rather than redis-py's ``Script`` object: the same round trip
        with fewer Python layers, on ``Redis`` and ``RedisCluster`` alike (the cluster
        routes EVALSHA by its keys, SCRIPT LOAD to every primary).
        """
        try:
            command = ("EVALSHA", SHAS[name], len(keys), *keys, *args)
            try:
                return self._execute(*command)
            except NoScriptError:
                self._execute("SCRIPT LOAD", SOURCES[name])
                return self._execute(*command)
        except Exception as exc:
            raise backend_error(name, exc) from exc

    def window_hit(
        self, key: str, now: int, window: int, limit: int
    ) -> tuple[bool, int, str | None]:
        """See :class:`ameli_otp._store.Store`."""
        entry = new_entry()
        args = [now, window, limit, entry, SLACK_MS]
        allowed, value = outcome(self._call("window_hit", self._keys.window(key), args))
        return (True, value, entry) if allowed else (False, value, None)

    def window_peek(self, key: str, now: int, window: int) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        return pair(self._call("window_peek", self._keys.window(key), [now, window]))

    def window_release(self, key: str, entry: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        self._call("window_release", self._keys.window(key), [entry])

    def window_reset(self, key: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        self._call("window_reset", self._keys.window(key), [])

    def issue_code(
        self, account: str, now: int, limits: Limits, code_hash: bytes
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = issue_args(now, limits, new_entry(), code_hash)
        return outcome(self._call("issue_code", self._keys.state(account), args))

    def verify_code(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = verify_args(now, limits, candidates, device)
        return outcome(self._call("verify_code", self._keys.state(account), args))

    def device_trusted(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, trust_ttl, device]
        return bool(self._call("device_trusted", self._keys.state(account), args))

    def forget_device(self, account: str, device: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        self._call("forget_device", self._keys.state(account), [device])

    def forget_all_devices(self, account: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        self._call("forget_all_devices", self._keys.state(account), [])

    def unlock(self, account: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        self._call("unlock", self._keys.state(account), [])
