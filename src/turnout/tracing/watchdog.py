"""A client-side deadline for round trips on a driver's socket.

psycopg waits for the server's answer without a deadline of its own, and
``statement_timeout`` is the server's: a server that stops answering (SIGSTOPped,
overloaded to a standstill) or a network that silently drops everything (a partition, a
proxy or load balancer that blackholes an established connection) holds the waiting
thread until the operating system gives up on the connection, which for a frozen peer
on a working network is never. :meth:`Watchdog.guard` bounds a block of round trips on
one connection: if the block is still running at its deadline, the watchdog's thread
shuts the socket down (``shutdown(SHUT_RDWR)``), the blocked ``recv`` returns at once and
the driver finds its connection broken; the guard says so (:attr:`Guard.fired`).

libpq's own settings do not cover these cases (measured with psycopg 3.3 and libpq 18
against PostgreSQL 15, statement timeout 1 s): with ``tcp_user_timeout=2000`` a write
across a partition failed after 3.3 s, but against a SIGSTOPped server or a frozen proxy
(whose kernel still acknowledges every byte) it was still waiting at 20 s; keepalives (1
s idle, 1 s interval, 2 probes) ended none of the three within 20 s (a probe is not sent
while data waits for its acknowledgement, and a stopped peer's kernel answers it).
``connect_timeout`` does bound a new connection in all three (psycopg enforces it, 2 s at
least). The watchdog ended each of the three at its deadline.

One thread serves a watchdog, started when a guard is armed and none is running, ended
when it wakes to find nothing armed (at the latest one timeout after the last guard) or
by :meth:`close`. A guard holds a duplicate of the socket's descriptor, closed when the
guard ends, so the watchdog never touches a descriptor the driver has closed and reused.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Guard:
    """One armed deadline; :attr:`fired` once the watchdog cut the socket."""

    deadline: float
    sock: socket.socket | None = field(default=None, repr=False)
    fired: bool = False


class Watchdog:
    """Shuts a socket down when the round trips guarded on it run past their deadline."""

    def __init__(self, name: str = "turnout-watchdog") -> None:
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._armed: Guard | None = None
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread next looks (inf: no thread)
        self._closed = False

    @contextlib.contextmanager
    def guard(self, fileno: int, timeout_s: float | None) -> Iterator[Guard]:
        """Run the block with the socket ``fileno`` shut down after ``timeout_s``
        (None: no deadline). One guard at a time: the caller holds its connection's
        lock."""
        if timeout_s is None:
            yield Guard(math.inf)
            return
        duplicate = os.dup(fileno)
        try:
            sock = socket.socket(fileno=duplicate)
        except BaseException:
            os.close(duplicate)
            raise
        guard = Guard(time.monotonic() + timeout_s, sock)
        try:
            with self._cond:
                self._armed = guard
                if self._thread is None and not self._closed:
                    self._wakes_at = guard.deadline
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
                elif guard.deadline < self._wakes_at:
                    self._cond.notify()
            yield guard
        finally:
            with self._cond:
                self._armed = None
            sock.close()

    def close(self) -> None:
        """End the thread (a guard armed later has no deadline)."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        with self._cond:
            while (guard := self._armed) is not None and not self._closed:
                left = guard.deadline - time.monotonic()
                if left > 0:
                    self._wakes_at = guard.deadline
                    self._cond.wait(left)
                    continue
                guard.fired = True
                self._armed = None
                assert guard.sock is not None
                with contextlib.suppress(OSError):
                    guard.sock.shutdown(socket.SHUT_RDWR)
            self._thread = None
            self._wakes_at = math.inf
