"""A small TCP proxy on 127.0.0.1 for fault tests: it forwards to a target, and can drop, delay or
cut the connections going through it.

    with Proxy(("127.0.0.1", slapd.port)) as proxy:
        url = proxy.url                       # ldap://127.0.0.1:<proxy port>
        proxy.cut_after(to_client=50_000)     # reset every connection once 50 kB reached the client
        proxy.cut()                           # reset every open connection now
        proxy.mode = "drop"                   # swallow what the client sends, answer nothing
        proxy.delay = 0.2                     # wait before forwarding each chunk

Everything runs in daemon threads with short poll timeouts; `close()` returns within about a
second, and every thread ends by `lifetime` seconds at the latest, whatever the test does.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Literal

Mode = Literal["forward", "drop"]


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a firewall would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class Proxy:
    def __init__(self, target: tuple[str, int], *, lifetime: float = 60.0) -> None:
        self.target = target
        self.mode: Mode = "forward"
        self.delay = 0.0
        self.deadline = time.monotonic() + lifetime
        self.to_client = 0  # bytes forwarded server → client, all connections
        self.to_server = 0  # bytes forwarded client → server
        self.connections = 0
        self.cuts = 0
        self._limit_client: int | None = None
        self._limit_server: int | None = None
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True, name="proxy-accept")]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return not self._closed.is_set() and time.monotonic() < self.deadline

    def cut_after(self, *, to_client: int | None = None, to_server: int | None = None) -> None:
        """Reset every connection once the byte counts (from now on) pass these limits."""
        with self._lock:
            self._limit_client = None if to_client is None else self.to_client + to_client
            self._limit_server = None if to_server is None else self.to_server + to_server

    def cut(self) -> None:
        """Reset every open connection now (new ones are still accepted)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.cuts += 1 if pairs else 0
        for client, server in pairs:
            _reset(client)
            _reset(server)

    def close(self) -> None:
        self._closed.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=1.0)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # threads ---------------------------------------------------------------------------------

    def _accept(self) -> None:
        while self.alive:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=2.0)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, server))
                self.connections += 1
            thread = threading.Thread(
                target=self._pump, args=(client, server), daemon=True, name="proxy-pump"
            )
            self._threads.append(thread)
            thread.start()

    def _over_limit(self) -> bool:
        return (self._limit_client is not None and self.to_client >= self._limit_client) or (
            self._limit_server is not None and self.to_server >= self._limit_server
        )

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peer = {client: server, server: client}
        try:
            while self.alive:
                with self._lock:
                    if (client, server) not in self._pairs:
                        return  # cut
                try:
                    ready, _, _ = select.select([client, server], [], [], 0.05)
                except (OSError, ValueError):
                    return
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if sock is client and self.mode == "drop":
                        continue
                    if self.delay:
                        time.sleep(self.delay)
                    with self._lock:
                        if sock is server:
                            self.to_client += len(data)
                        else:
                            self.to_server += len(data)
                        over = self._over_limit()
                    if over:
                        # forward part of it, then cut: the peer sees a truncated message
                        with contextlib.suppress(OSError):
                            peer[sock].sendall(data[: len(data) // 2])
                        with self._lock:
                            self._limit_client = self._limit_server = None
                        self.cut()
                        return
                    try:
                        peer[sock].sendall(data)
                    except OSError:
                        return
        finally:
            with self._lock:
                if (client, server) in self._pairs:
                    self._pairs.remove((client, server))
            _reset(client)
            _reset(server)
