"""Test doubles that users and turnout's own tests share.

:class:`FakeOpenAI` is an OpenAI-compatible server on a real socket whose
failures are scripted with :class:`Fault`. Names are imported lazily, so
``import turnout.testing`` does not import aiohttp (and
``python -m turnout.testing.fake_openai`` runs cleanly).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turnout.testing.fake_openai import FakeOpenAI, RecordedRequest
    from turnout.testing.faults import Fault
    from turnout.testing.replies import echo_last_user
    from turnout.testing.server_thread import ServerThread

__all__ = ["FakeOpenAI", "Fault", "RecordedRequest", "ServerThread", "echo_last_user"]

_WHERE = {
    "FakeOpenAI": "turnout.testing.fake_openai",
    "RecordedRequest": "turnout.testing.fake_openai",
    "ServerThread": "turnout.testing.server_thread",
    "Fault": "turnout.testing.faults",
    "echo_last_user": "turnout.testing.replies",
}


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'turnout.testing' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
