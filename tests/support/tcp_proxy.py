"""A TCP forwarder a test can cut and restore, or freeze and thaw: "the database is
unreachable" without stopping the machine's server. While stopped, its port refuses
connections and every connection through it is closed. While frozen, nothing is
forwarded either way but every connection stays open and new ones are taken: what a
client sees of a SIGSTOPped server, or of a proxy or network that blackholes an
established connection (its bytes are acknowledged, or just lost, and nothing comes
back). :meth:`TcpProxy.trip_on` does either at one exact point of the conversation:
right after (or instead of) forwarding the client's next message that holds a marker,
say ``COMMIT``. Run as ``python -m support.tcp_proxy PORT`` it forwards to
127.0.0.1:PORT from a process of its own, printing the port it listens on."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class _Trip:
    marker: bytes
    forward: bool
    then: Literal["freeze", "cut"]


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._trip: _Trip | None = None

    def freeze(self) -> None:
        """Stop forwarding; keep every connection open (and take new ones)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again, what was held first."""
        self._flowing.set()

    def trip_on(
        self, marker: bytes, *, forward: bool = True, then: Literal["freeze", "cut"] = "freeze"
    ) -> None:
        """Once, at the next chunk a client sends that holds ``marker``: forward it (or,
        ``forward=False``, drop it: the server never gets it), then freeze (as
        :meth:`freeze`: the server's answer is held) or cut that connection (both its
        sockets shut down: the client finds it closed)."""
        with self._lock:
            self._trip = _Trip(marker, forward, then)

    def _tripped(self, data: bytes) -> _Trip | None:
        with self._lock:
            trip = self._trip
            if trip is None or trip.marker not in data:
                return None
            self._trip = None
            return trip

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.thaw()  # a frozen pump goes on to find its sockets closed

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, from_client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                trip = self._tripped(data) if from_client else None
                if trip is None or trip.forward:
                    dst.sendall(data)
                if trip is not None:
                    if trip.then == "cut":
                        return  # both sockets shut down below
                    self._flowing.clear()
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


if __name__ == "__main__":
    proxy = TcpProxy(("127.0.0.1", int(sys.argv[1])))
    proxy.start()
    print(proxy.port, flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
