"""Virtual keys for the team gateway: made once, stored as a hash, checked in constant
time. See :mod:`turnout.keys.model` and :mod:`turnout.keys.store`."""

from turnout.keys.model import KeyRefused, Period, VirtualKey, generate_key, hash_key
from turnout.keys.store import KeyStore, key_summary

__all__ = [
    "KeyRefused",
    "KeyStore",
    "Period",
    "VirtualKey",
    "generate_key",
    "hash_key",
    "key_summary",
]
