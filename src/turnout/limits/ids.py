"""Ids of the entries the Redis scripts keep (a rate-limit log member, a budget hold)."""

from __future__ import annotations

import random


def entry_id() -> str:
    """16 hex digits, unique in practice across replicas. From :mod:`random`, which is
    seeded per process (and reseeded in a forked worker): ``os.urandom`` costs ~30 µs a
    call on some machines, on the request path of every keyed gateway request."""
    return f"{random.getrandbits(64):016x}"
