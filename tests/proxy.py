"""A TCP proxy between redis-py and one real server, that can lose replies on purpose.

It reads just enough RESP to find where each command and each reply ends, so that a
test can lose the reply of chosen commands the way a network does: the command reaches
the server and runs, its reply never comes back. The client then sees either a closed
connection at once (``mode="close"``) or nothing until its socket timeout
(``mode="silent"``). It can also stop answering altogether (a hung server) or refuse
connections (a dead one) while the real server lives on with its data.

Replies go back in the order of the commands of each connection (RESP is ordered), so
pipelined commands work too. The proxy runs an asyncio loop in a thread of its own;
every method is called from the test's thread.

    with Proxy(server.port) as proxy:
        proxy.drop_replies(lambda cmd: cmd[0].upper() == b"EVALSHA", mode="close")
        client = redis.Redis(port=proxy.port)
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal

__all__ = ["HOST", "Mode", "Proxy", "command_is"]

HOST = "127.0.0.1"
WAIT_TIMEOUT = 10.0  # s: for the proxy's thread and for Proxy.wait

Command = list[bytes]
Mode = Literal["close", "silent"]


def command_is(name: str) -> Callable[[Command], bool]:
    """A ``match`` for :meth:`Proxy.drop_replies`: the command called ``name``."""
    wanted = name.upper().encode()
    return lambda command: command[0].upper() == wanted


class _Rule:
    """Lose the replies of the commands ``match`` accepts, ``times`` times (None: always).

    With ``per_command``, ``times`` counts for each distinct command (its exact
    arguments) instead: a client's replay of a command whose reply was lost is then
    answered, as on a network that lost one packet.
    """

    def __init__(
        self,
        match: Callable[[Command], bool],
        times: int | None,
        mode: Mode,
        per_command: bool,
        then: Callable[[], None] | None,
    ) -> None:
        self.match = match
        self.times = times
        self.mode = mode
        self.per_command = per_command
        self.then = then
        self.seen: collections.Counter[tuple[bytes, ...]] = collections.Counter()
        self.total = 0

    def take(self, command: Command) -> bool:
        """Whether this command's reply is to be lost (and count it)."""
        if not self.match(command):
            return False
        key = tuple(command)
        used = self.seen[key] if self.per_command else self.total
        if self.times is not None and used >= self.times:
            return False
        self.seen[key] += 1
        self.total += 1
        return True


class Proxy:
    """127.0.0.1:``port`` forwards to 127.0.0.1:``upstream``; a context manager.

    Counters, by upper-case command name (``"EVALSHA"``): ``received`` every command read
    from a client, ``forwarded`` those sent on to the server, ``dropped`` those whose reply
    was lost. ``log`` lists the names of the forwarded commands in order.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0  # known once started
        self.received: collections.Counter[str] = collections.Counter()
        self.forwarded: collections.Counter[str] = collections.Counter()
        self.dropped: collections.Counter[str] = collections.Counter()
        self.log: list[str] = []
        self._rules: list[_Rule] = []
        self._hung = False
        self._changed = threading.Condition()  # guards the state above
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # both ends of every connection
        self._connections: set[asyncio.Task[Any]] = set()  # one task per client connection
        self.errors: list[BaseException] = []  # what broke a pump, other than a closed connection

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Proxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self._close(listening=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT_TIMEOUT)
        self._loop.close()
        if self.errors and exc_info[0] is None:
            raise RuntimeError(f"the proxy failed: {self.errors!r}") from self.errors[0]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``: the proxy's address for ``from_url``."""
        return f"redis://{HOST}:{self.port}/0"

    # -- faults ----------------------------------------------------------------------------------

    def drop_replies(
        self,
        match: Callable[[Command], bool],
        *,
        times: int | None = 1,
        mode: Mode = "close",
        per_command: bool = False,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Forward the matching commands but lose their replies (see :class:`_Rule`).

        ``match`` receives the command as a list of bytes (``[b"EVALSHA", sha, ...]``).
        ``"close"``: the reply is swallowed and the client's connection closed at once;
        ``"silent"``: swallowed, the connection left open (the client times out).
        ``then()`` runs on the proxy's thread each time a reply is lost, before the proxy
        reads anything more: what it does happens after the command ran and before any
        replay of it reaches the server (it must not use this proxy).
        """
        if mode not in ("close", "silent"):
            raise ValueError(f"mode must be 'close' or 'silent', not {mode!r}")
        with self._changed:
            self._rules.append(_Rule(match, times, mode, per_command, then))

    def blackhole(self) -> None:
        """A hung server: connections are accepted, commands read, none forwarded or answered."""
        with self._changed:
            self._hung = True

    def kill(self) -> None:
        """A dead server: stop listening and close every connection (clients are refused)."""
        self._run(self._close(listening=True))

    def close_connections(self) -> None:
        """Close every open connection now (a client waiting for a reply sees it closed)."""
        self._run(self._close(listening=False))

    def heal(self) -> None:
        """Back to a plain proxy: no rules, not hung, listening again if killed."""
        with self._changed:
            self._rules.clear()
            self._hung = False
        if self._server is None:
            self._run(self._listen())

    def wait(self, condition: Callable[[], bool], timeout: float = WAIT_TIMEOUT) -> None:
        """Block until ``condition()`` (checked whenever a counter changes) holds."""
        with self._changed:
            if not self._changed.wait_for(condition, timeout):
                raise TimeoutError("the proxy never reached the expected state")

    # -- the loop's side -------------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(WAIT_TIMEOUT)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port or 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self, *, listening: bool) -> None:
        if listening and self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await asyncio.gather(*self._connections, return_exceptions=True)  # until each has ended

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """One client connection: its own connection to the server, and two pumps."""
        this = asyncio.current_task()
        assert this is not None
        self._connections.add(this)
        this.add_done_callback(self._connections.discard)
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(HOST, self.upstream)
        except OSError:  # the real server is down: so is this connection
            client_w.close()
            self._writers.discard(client_w)
            return
        self._writers.add(server_w)
        # per command in flight, in order: its name and the rule that loses its reply, if any
        pending: collections.deque[tuple[str, _Rule | None]] = collections.deque()
        pumps = [
            asyncio.create_task(self._commands(client_r, server_w, pending)),
            asyncio.create_task(self._replies(server_r, client_w, pending)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:  # either side closed, or the proxy did: close both
            for pump in pumps:
                pump.cancel()
            for writer in (client_w, server_w):
                writer.close()
                self._writers.discard(writer)
            for outcome in await asyncio.gather(*pumps, return_exceptions=True):
                if outcome is not None and not isinstance(outcome, _EXPECTED):
                    self.errors.append(outcome)

    async def _commands(
        self,
        client_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
        pending: collections.deque[tuple[str, _Rule | None]],
    ) -> None:
        """Client to server: one command at a time, counted, forwarded unless hung."""
        values = _Values(client_r)
        while True:
            raw, command = await values.next()
            name = command[0].decode(errors="replace").upper() if command else "?"
            with self._changed:
                self.received[name] += 1
                self._changed.notify_all()
                if self._hung:
                    continue
                rule = next((rule for rule in self._rules if rule.take(command)), None)
                pending.append((name, rule))
                self.forwarded[name] += 1
                self.log.append(name)
            server_w.write(raw)
            await server_w.drain()

    async def _replies(
        self,
        server_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        pending: collections.deque[tuple[str, _Rule | None]],
    ) -> None:
        """Server to client: one reply at a time, passed on unless its command's rule loses it."""
        values = _Values(server_r)
        while True:
            await values.arrival()  # the reply to the oldest command in flight
            name, rule = pending.popleft() if pending else ("?", None)
            if rule is None:
                await values.next(sink=client_w.write)
                await client_w.drain()
                continue
            await values.next()
            if rule.then is not None:
                rule.then()  # blocks the loop: no replay can pass before it is done
            with self._changed:
                self.dropped[name] += 1
                self._changed.notify_all()
            if rule.mode == "close":
                raise _Closed


class _Closed(Exception):
    """The connection is closed on purpose (a reply lost with mode "close")."""


#: how a pump ends when a connection closes
_EXPECTED = (OSError, asyncio.IncompleteReadError, asyncio.CancelledError, _Closed)


class _Values:
    """The RESP values arriving on one stream, one at a time.

    Each byte is looked at once, as it arrives, so that a large reply (``COMMAND``, which
    cluster clients ask for) costs little. Types: RESP2 (``+ - : $ *``) and the RESP3 ones
    redis-py may receive (``_ , # ( ! = ~ > %``); attributes (``|``) and inline commands
    are not supported.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()  # the value being read starts at 0
        self._start()

    def _start(self) -> None:
        self._at = 0  # read up to here
        self._need = 1  # values still to read before the current one is complete
        self._bulk: int | None = None  # inside a string of this many bytes (and CRLF)
        self._items: Command = []  # its strings, in order: a command's name and arguments

    async def arrival(self) -> None:
        """Wait until the next value has begun to arrive."""
        if not self._buffer:
            await self._read()

    async def next(self, sink: Callable[[bytes], object] | None = None) -> tuple[bytes, Command]:
        """The next value: its raw bytes, and the strings in it.

        ``sink`` receives the value's bytes as they are read (a large reply then flows on
        to the client at once, instead of after the proxy has read all of it).
        """
        sent = 0
        while True:
            complete = self._advance()
            if sink is not None and self._at > sent:
                sink(bytes(self._buffer[sent : self._at]))
                sent = self._at
            if complete:
                break
            await self._read()
        raw, items = bytes(self._buffer[: self._at]), self._items
        del self._buffer[: self._at]
        self._start()
        return raw, items

    async def _read(self) -> None:
        chunk = await self._reader.read(1 << 16)
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(self._buffer), None)
        self._buffer += chunk

    def _advance(self) -> bool:
        """Read on through what has arrived; whether the current value is complete."""
        buffer = self._buffer
        while self._need:
            if self._bulk is not None:
                end = self._at + self._bulk + 2
                if len(buffer) < end:
                    return False
                self._items.append(bytes(buffer[self._at : end - 2]))
                self._at, self._bulk, self._need = end, None, self._need - 1
                continue
            eol = buffer.find(b"\r\n", self._at)
            if eol < 0:
                return False
            kind, head = buffer[self._at], bytes(buffer[self._at + 1 : eol])
            self._at = eol + 2
            if kind in b"$!=":  # a string of head bytes follows (-1: null)
                size = int(head)
                self._bulk, self._need = (None, self._need - 1) if size < 0 else (size, self._need)
            elif kind in b"*~>%":  # head values follow (pairs for %; -1: null)
                self._need += max(int(head), 0) * (2 if kind == ord("%") else 1) - 1
            elif kind in b"+-:_,#(":  # a one-line value
                self._items.append(head)
                self._need -= 1
            else:
                raise ValueError(f"not RESP: {chr(kind)!r} {head[:40]!r}")
        return True
