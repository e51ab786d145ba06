"""The watchdog cuts a blocked socket off at its deadline, leaves one that answered in
time alone, and leaves no thread or descriptor behind."""

from __future__ import annotations

import os
import socket
import threading
import time

from turnout.tracing.watchdog import Watchdog


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_a_recv_past_its_deadline_is_cut_off() -> None:
    watchdog = Watchdog("test-watchdog")
    a, b = socket.socketpair()
    with a, b:
        started = time.monotonic()
        with watchdog.guard(a.fileno(), 0.2) as guard:
            data = a.recv(1)  # b never answers: blocked until the watchdog shuts `a` down
        elapsed = time.monotonic() - started
        assert data == b"" and guard.fired
        assert 0.15 < elapsed < 1.0
    watchdog.close()


def test_an_answer_in_time_is_left_alone_and_the_thread_ends() -> None:
    watchdog = Watchdog("test-watchdog-quiet")
    fds = len(os.listdir("/proc/self/fd"))
    a, b = socket.socketpair()
    with a, b:
        for _ in range(3):
            with watchdog.guard(a.fileno(), 0.2) as guard:
                b.sendall(b"x")
                assert a.recv(1) == b"x"
            assert not guard.fired
        time.sleep(0.3)  # past the deadline: nothing is cut
        b.sendall(b"y")
        assert a.recv(1) == b"y"
        deadline = time.monotonic() + 2
        while _threads("test-watchdog-quiet") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _threads("test-watchdog-quiet")  # it woke, found nothing armed, ended
    assert len(os.listdir("/proc/self/fd")) == fds  # each guard's duplicate is closed
    watchdog.close()


def test_a_shorter_deadline_after_a_longer_one_is_kept() -> None:
    """The thread sleeping towards a long deadline (a read's) is woken for a shorter
    one (a write's)."""
    watchdog = Watchdog("test-watchdog-order")
    a, b = socket.socketpair()
    with a, b:
        with watchdog.guard(a.fileno(), 30.0):
            pass
        started = time.monotonic()
        with watchdog.guard(a.fileno(), 0.2) as guard:
            assert a.recv(1) == b""
        assert guard.fired and time.monotonic() - started < 1.0
    watchdog.close()


def test_close_ends_the_thread_at_once() -> None:
    watchdog = Watchdog("test-watchdog-close")
    a, b = socket.socketpair()
    with a, b, watchdog.guard(a.fileno(), 30.0):
        assert _threads("test-watchdog-close")
    started = time.monotonic()
    watchdog.close()
    assert time.monotonic() - started < 1.0 and not _threads("test-watchdog-close")


def test_no_deadline_no_thread() -> None:
    watchdog = Watchdog("test-watchdog-none")
    a, b = socket.socketpair()
    with a, b, watchdog.guard(a.fileno(), None) as guard:
        assert not _threads("test-watchdog-none") and not guard.fired
    watchdog.close()
