"""Is the process that wrote a ``running`` run still there?

A run is recorded ``running`` when it starts, with its writer (``pid@host``). A run
that ends, fails or is interrupted (Ctrl-C, SIGTERM) is recorded with its final
status; one whose process was killed outright never is. Readers call
:func:`seen_status`: a ``running`` run whose writer, on this host, is gone is shown
as ``abandoned``. A writer on another host cannot be checked from here: its runs
stay ``running``.
"""

from __future__ import annotations

import os
import socket
from typing import cast

from turnout.tracing.records import RunStatus


def this_writer() -> str:
    """``pid@host`` of the current process."""
    return f"{os.getpid()}@{socket.gethostname()}"


def writer_gone(writer: str | None) -> bool:
    """True when ``writer`` names a process of this host that no longer exists."""
    if not writer:
        return False
    pid_text, _, host = writer.partition("@")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists, under another user
        return False
    return False


def seen_status(status: str, writer: str | None) -> RunStatus:
    """The status to show: ``abandoned`` for a ``running`` run whose writer is gone."""
    if status == "running" and writer_gone(writer):
        return "abandoned"
    return cast(RunStatus, status)
