"""The Redis and Redis Cluster store: each primitive one Lua script, one round trip.

This file is the source of ``_async_redis.py`` (``tools/gen_async.py``); keep
every method to: names and arguments (``_redis_common``), one ``self._call``.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError
from redis.retry import Retry

from ._errors import BackendError, ConfigurationError
from ._policy import Limits, positive_int
from ._redis_common import (
    CHECK_TIMEOUT,
    CONNECT_TIMEOUT,
    MAX_CONNECTIONS,
    POOL_TIMEOUT,
    SHAS,
    SLACK_MS,
    SOCKET_TIMEOUT,
    SOURCES,
    Gate,
    KeyNames,
    backend_error,
    check_client,
    check_memory_policy,
    check_prefix,
    check_timeout,
    config_refused,
    describe,
    issue_args,
    may_have_run,
    new_entry,
    outcome,
    pair,
    raw_status,
    text_or_none,
    track,
    verify_args,
)
from ._status import Raw

__all__ = ["RedisBackend"]


class RedisBackend:
    """A store on Redis or Valkey, standalone or cluster (versions: docs/redis.md).

    ``client`` is a ``redis.Redis`` or a ``redis.cluster.RedisCluster``; all keys
    start with ``prefix``. Every operation is one EVALSHA; any failure of the
    client or the server raises :class:`~ameli_otp.BackendError`. Before its first
    operation in each process the store checks that the server never evicts keys
    (``ConfigurationError`` otherwise, unless ``allow_eviction=True``: RULES R8.2).

    :meth:`from_url` builds the client the library recommends (timeouts, pool, one
    replay-safe retry); a client of your own keeps its own settings (docs/redis.md).
    """

    __slots__ = (
        "__weakref__",
        "_allow_eviction",
        "_checked",
        "_client",
        "_execute",
        "_first",
        "_gate",
        "_keys",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str = "ameli-otp",
        *,
        allow_eviction: bool = False,
    ) -> None:
        check_client(client, want_async=False)
        if not isinstance(allow_eviction, bool):
            raise TypeError(f"allow_eviction must be a bool, not {type(allow_eviction).__name__}")
        self._client = client
        self._keys = KeyNames(prefix)
        # typed through Any: redis-py leaves RedisCluster.execute_command untyped
        self._execute: Any = client.execute_command
        self._allow_eviction = allow_eviction
        self._checked = allow_eviction  # the server's eviction policy, once per process
        # one check at a time (it also loads a cluster's slot map)
        self._first = Gate(1, CHECK_TIMEOUT, "busy checking the server's eviction policy")
        self._gate: Gate | None = None  # from_url: calls in flight, and one replay-safe retry
        track(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "ameli-otp",
        cluster: bool = False,
        max_connections: int = MAX_CONNECTIONS,
        connect_timeout: float = CONNECT_TIMEOUT,
        socket_timeout: float = SOCKET_TIMEOUT,
        pool_timeout: float = POOL_TIMEOUT,
        allow_eviction: bool = False,
        **redis_options: Any,
    ) -> RedisBackend:
        """A store on a client built the way the library recommends (RULES R8.3).

        ``url`` is a redis-py URL (``redis://host:6379/0``, ``rediss://`` for TLS);
        ``cluster=True`` for Redis Cluster (any node's URL). At most ``max_connections``
        calls are in flight (per node on a cluster); a burst waits up to
        ``pool_timeout`` s for a free one instead of failing. redis-py's own retries
        are off: a connection that cannot be opened within ``connect_timeout`` s
        fails at once with ``BackendError``; a call whose reply is lost or late
        (``socket_timeout`` s) is sent once more, which the scripts recognise and never
        count twice (R8.1). ``redis_options`` go to redis-py as they are (``password``,
        ``ssl_ca_certs``, ``protocol``...). Nothing is sent before the first operation, but
        for redis-py's sync ``RedisCluster``, which loads the cluster's slot map when built
        (``BackendError`` if no node answers).
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if not isinstance(cluster, bool):
            raise TypeError(f"cluster must be a bool, not {type(cluster).__name__}")
        if not isinstance(allow_eviction, bool):
            raise TypeError(f"allow_eviction must be a bool, not {type(allow_eviction).__name__}")
        check_prefix(prefix)  # every argument checked before a client is built
        size = positive_int("max_connections", max_connections)
        connect = check_timeout("connect_timeout", connect_timeout)
        options: dict[str, Any] = {
            "max_connections": size,
            "socket_connect_timeout": connect,
            "socket_timeout": check_timeout("socket_timeout", socket_timeout),
            "retry": Retry(NoBackoff(), 0),
            **redis_options,
        }
        gate = Gate(size, check_timeout("pool_timeout", pool_timeout), down_for=connect)
        client: Redis | RedisCluster
        if cluster:
            try:  # redis-py's sync cluster client loads the slot map when it is built
                client = RedisCluster.from_url(url, **options)
            except Exception as exc:
                raise backend_error("from_url", exc) from exc
            if hasattr(client, "cluster_error_retry_attempts"):  # redis-py 5: not from retry
                client.cluster_error_retry_attempts = 0
        else:
            client = Redis.from_url(url, **options)
        backend = cls(client, prefix, allow_eviction=allow_eviction)
        backend._gate = gate
        return backend

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client."""
        return self._client

    @property
    def prefix(self) -> str:
        """The prefix of every key."""
        return self._keys.prefix

    def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA the script ``name``: one round trip, failures as ``BackendError``.

        On a store built by :meth:`from_url`, the call waits for its turn at the gate and
        is sent once more if it may have run but its reply was lost (R8.1, R8.3).
        """
        command = ("EVALSHA", SHAS[name], len(keys), *keys, *args)
        try:
            if self._gate is None:
                if not self._checked:
                    self._check_server()
                return self._evalsha(name, command)
            self._gate.enter()
            try:
                return self._guarded(name, command)
            finally:
                self._gate.exit()
        except (BackendError, ConfigurationError):
            raise
        except Exception as exc:
            raise backend_error(name, exc) from exc

    def _guarded(self, name: str, command: tuple[Any, ...]) -> Any:
        """A call of a :meth:`from_url` store, its turn at the gate taken (R8.1, R8.3).

        Sent once more if it may have run but its reply was lost: the scripts recognise
        the replay by its request id. A connection that could not be opened is not retried
        (nothing was sent), and fails the calls that follow at once for ``connect_timeout``
        s: a burst learns at once that the server is gone, instead of each call in turn.
        """
        gate = self._gate
        assert gate is not None  # noqa: S101 - only called with a gate, for mypy
        gate.check()
        try:
            if not self._checked:
                self._check_server()
            try:
                return self._evalsha(name, command)
            except (ConnectionError, TimeoutError) as exc:
                if not may_have_run(exc):
                    raise
            return self._evalsha(name, command)  # the same request id: never counted twice
        except (ConnectionError, TimeoutError) as exc:
            # Not after timeouts: in a process short of CPU a reply can sit unread past
            # socket_timeout, and one such call must not fail the whole burst behind it.
            if not may_have_run(exc):
                gate.down()
            raise

    def _evalsha(self, name: str, command: tuple[Any, ...]) -> Any:
        """EVALSHA by the script's SHA1; SCRIPT LOAD it and run it again if the server lacks it.

        ``execute_command`` rather than redis-py's ``Script`` object: the same round trip
        with fewer Python layers, on ``Redis`` and ``RedisCluster`` alike (the cluster
        routes EVALSHA by its keys, SCRIPT LOAD to every primary).
        """
        try:
            return self._execute(*command)
        except NoScriptError:
            self._execute("SCRIPT LOAD", SOURCES[name])
            return self._execute(*command)

    def _check_server(self) -> None:
        """R8.2: refuse a server that may evict keys (every node of a cluster).

        One caller checks while the others wait: on a cluster, this first command also
        loads the slot map, which redis-py's asyncio client does badly when many tasks
        start it at once.
        """
        self._first.enter()
        try:
            if self._checked:
                return
            where = describe(self._client)
            try:
                if isinstance(self._client, RedisCluster):
                    reply = self._execute(
                        "CONFIG GET", "maxmemory-policy", target_nodes=RedisCluster.ALL_NODES
                    )
                else:
                    reply = self._execute("CONFIG GET", "maxmemory-policy")
            except ResponseError as exc:  # no CONFIG here (a managed service, an ACL)
                config_refused(exc, where)
            else:
                check_memory_policy(reply, where)
            self._checked = True
        finally:
            self._first.exit()

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
        self._call("window_reset", self._keys.window_changed(key), [new_entry(), SLACK_MS])

    def issue_code(
        self, account: str, now: int, limits: Limits, code_hash: bytes
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = issue_args(now, limits, new_entry(), code_hash)
        return outcome(self._call("issue_code", self._keys.changed(account), args))

    def verify_code(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = verify_args(now, limits, new_entry(), candidates, device)
        return outcome(self._call("verify_code", self._keys.changed(account), args))

    def device_trusted(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, trust_ttl, device]
        return bool(self._call("device_trusted", self._keys.state(account), args))

    def forget_device(self, account: str, now: int, trust_ttl: int, device: str) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, trust_ttl, device, new_entry(), SLACK_MS]
        return bool(self._call("forget_device", self._keys.changed(account), args))

    def forget_all_devices(self, account: str, now: int, trust_ttl: int) -> int:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, trust_ttl, new_entry(), SLACK_MS]
        return int(self._call("forget_all_devices", self._keys.changed(account), args))

    def unlock(self, account: str, now: int, lockout: int) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, lockout, new_entry(), SLACK_MS]
        return bool(self._call("unlock", self._keys.changed(account), args))

    def inspect(self, account: str) -> Raw:
        """See :class:`ameli_otp._store.Store`."""
        return raw_status(self._call("inspect", self._keys.inspect(account), []))

    def totp_read(self, account: str) -> tuple[str | None, str | None]:
        """See :class:`ameli_otp._store.Store`."""
        pending, confirmed = self._call("totp_read", self._keys.authenticator(account), [])
        return text_or_none(pending), text_or_none(confirmed)

    def totp_enroll(self, account: str, now: int, limits: Limits, ref: str) -> None:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, ref, limits.code_ttl, SLACK_MS, new_entry()]
        self._call("totp_enroll", self._keys.enrolled(account), args)

    def totp_confirm(
        self, account: str, now: int, limits: Limits, ref: str, step: int
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, ref, step, limits.code_ttl, limits.lockout, limits.max_failed_attempts]
        args += [SLACK_MS, new_entry()]
        return outcome(self._call("totp_confirm", self._keys.totp(account), args))

    def totp_verify(
        self, account: str, now: int, limits: Limits, ref: str, step: int, device: str | None
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, ref, step, limits.lockout, limits.max_failed_attempts, SLACK_MS, new_entry()]
        args += [device or "", limits.device_trust_ttl, limits.max_trusted_devices]
        return outcome(self._call("totp_verify", self._keys.totp(account), args))

    def totp_remove(self, account: str, now: int, limits: Limits) -> bool:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, limits.code_ttl, new_entry(), SLACK_MS]
        return bool(self._call("totp_remove", self._keys.enrolled(account), args))

    def recovery_replace(self, account: str, hashes: tuple[bytes, ...]) -> None:
        """See :class:`ameli_otp._store.Store`."""
        args = [new_entry(), SLACK_MS, *hashes]
        self._call("recovery_replace", self._keys.recovery_set(account), args)

    def recovery_use(
        self,
        account: str,
        now: int,
        limits: Limits,
        candidates: tuple[bytes, ...],
        device: str | None,
    ) -> tuple[int, int]:
        """See :class:`ameli_otp._store.Store`."""
        args = [now, limits.lockout, limits.max_failed_attempts, SLACK_MS, new_entry()]
        args += [device or "", limits.device_trust_ttl, limits.max_trusted_devices, *candidates]
        return outcome(self._call("recovery_use", self._keys.recovery(account), args))
