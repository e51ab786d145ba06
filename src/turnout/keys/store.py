"""Virtual keys in the trace store's database (SQLite or PostgreSQL).

The ``virtual_keys`` table comes from the ``m008_virtual_keys`` migration; keys are
read and written through the store's shared-dialect ``query`` / ``execute``, so one
piece of SQL serves both databases. Only a key's hash is ever written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from turnout.errors import ConfigError
from turnout.keys.model import (
    KeyRefused,
    Period,
    VirtualKey,
    generate_key,
    hash_key,
    looks_like_key,
    names_json,
    same_hash,
    shown_prefix,
)
from turnout.tracing.rows import cost_to_pico, pico_to_cost
from turnout.tracing.store import TraceStore

_COLUMNS = (
    "name", "key_hash", "prefix", "created_at", "budget_picousd", "period", "rpm", "tpm",
    "policies", "models", "expires_at", "revoked_at",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM virtual_keys"
_INSERT = (
    f"INSERT INTO virtual_keys ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_UPDATABLE = ("budget_usd", "period", "rpm", "tpm", "policies", "models", "expires_at")
_UNSET: Any = object()
MAX_NAME = 64


def _row(key: VirtualKey) -> tuple[Any, ...]:
    return (
        key.name, key.key_hash, key.prefix, key.created_at,
        None if key.budget_usd is None else cost_to_pico(key.budget_usd), key.period.value,
        key.rpm, key.tpm, names_json(key.policies), names_json(key.models), key.expires_at,
        key.revoked_at,
    )  # fmt: skip


def _names(text: str | None) -> tuple[str, ...]:
    value = json.loads(text) if text else []
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _key(row: Sequence[Any]) -> VirtualKey:
    v = dict(zip(_COLUMNS, row, strict=True))
    return VirtualKey(
        name=v["name"], key_hash=v["key_hash"], prefix=v["prefix"],
        created_at=float(v["created_at"]),
        budget_usd=None if v["budget_picousd"] is None else pico_to_cost(v["budget_picousd"]),
        period=Period(v["period"]), rpm=None if v["rpm"] is None else int(v["rpm"]),
        tpm=None if v["tpm"] is None else int(v["tpm"]), policies=_names(v["policies"]),
        models=_names(v["models"]),
        expires_at=None if v["expires_at"] is None else float(v["expires_at"]),
        revoked_at=None if v["revoked_at"] is None else float(v["revoked_at"]),
    )  # fmt: skip


MAX_BUDGET_USD = Decimal(9_000_000)
"""Budgets are kept in pico-dollars in a BIGINT: about $9.2M at most."""
MAX_RPM = 2**31 - 1
"""``rpm`` is an INTEGER column."""
MAX_TPM = 2**53
"""``tpm`` is a BIGINT, counted in Redis's Lua numbers (doubles): exact to 2**53."""


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(
            f"key name {name!r}: use 1-{MAX_NAME} letters, digits, '-', '_' or '.'",
            field="name",
        )
    if not any(c.isalnum() for c in name):  # '.' and '..' are no path for the admin API
        raise ConfigError(f"key name {name!r}: give it a letter or a digit", field="name")
    return name


def _check_limits(key: VirtualKey, *, period_given: bool, expiry_given: bool, now: float) -> None:
    """What a key may be given; ConfigError naming the field (as the admin API spells
    it: ``turnout keys`` shows the option instead). An expiry is checked when given (an
    expired key can still be changed)."""
    budget = key.budget_usd
    if budget is not None:
        if not budget.is_finite():
            raise ConfigError(f"not a number: {budget}", field="budget_usd")
        if budget < 0:
            raise ConfigError("must not be negative", field="budget_usd")
        if budget > MAX_BUDGET_USD:
            raise ConfigError(f"at most {MAX_BUDGET_USD:,}", field="budget_usd")
        if 0 < budget < Decimal("1e-12"):
            raise ConfigError("below the smallest amount kept ($0.000000000001)",
                              field="budget_usd")  # fmt: skip
    elif period_given:
        raise ConfigError("a period is for a budget: give budget_usd too", field="period")
    for field, value, most in (("rpm", key.rpm, MAX_RPM), ("tpm", key.tpm, MAX_TPM)):
        if value is not None and not 1 <= value <= most:
            raise ConfigError(f"must be from 1 to {most:,} (0 or none: no limit)", field=field)
    if expiry_given and key.expires_at is not None and key.expires_at <= now:
        raise ConfigError("is in the past (to stop a key now, revoke it)", field="expires")


class KeyRevokedError(ConfigError):
    """A change asked of a revoked key (revoking is for good: make a new key)."""


class KeyStore:
    """Create, find, change and revoke virtual keys in ``store``."""

    def __init__(self, store: TraceStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def create(
        self,
        name: str,
        *,
        budget_usd: Decimal | None = None,
        period: Period | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        policies: Sequence[str] = (),
        models: Sequence[str] = (),
        expires_at: float | None = None,
    ) -> tuple[str, VirtualKey]:
        """A new key and its record (``period``: a month unless given, and only with a
        budget). The key is returned once and never stored."""
        name = check_name(name)
        secret = generate_key()
        record = VirtualKey(
            name=name, key_hash=hash_key(secret), prefix=shown_prefix(secret),
            created_at=self._clock(), budget_usd=budget_usd, period=period or Period.MONTH,
            rpm=rpm, tpm=tpm, policies=tuple(policies), models=tuple(models),
            expires_at=expires_at,
        )  # fmt: skip
        _check_limits(record, period_given=period is not None, expiry_given=True,
                      now=self._clock())  # fmt: skip
        if self.get(name) is not None:
            raise ConfigError(f"a key named {name!r} exists already", field="name")
        self.store.execute(_INSERT, _row(record))
        return secret, _key(_row(record))  # as stored (and shown): 1e3 dollars is 1000

    def get(self, name: str) -> VirtualKey | None:
        rows = self.store.query(f"{_SELECT} WHERE name = ?", (name,))
        return _key(rows[0]) if rows else None

    def require(self, name: str) -> VirtualKey:
        key = self.get(name)
        if key is None:
            raise ConfigError(f"no key named {name!r}", field="NAME")  # the CLI's argument
        return key

    def list(self, *, active: bool = False) -> list[VirtualKey]:
        """Every key by name; ``active``: only those usable now (not revoked, not expired)."""
        where = " WHERE revoked_at IS NULL" if active else ""
        keys = [_key(r) for r in self.store.query(f"{_SELECT}{where} ORDER BY name", ())]
        now = self._clock()
        return [k for k in keys if k.refusal(now) is None] if active else keys

    def find(self, presented: str) -> VirtualKey | None:
        """The record of a presented key (revoked and expired ones too), or None."""
        if not looks_like_key(presented):
            return None
        wanted = hash_key(presented)
        rows = self.store.query(f"{_SELECT} WHERE key_hash = ?", (wanted,))
        if not rows:
            return None
        key = _key(rows[0])
        return key if same_hash(key.key_hash, wanted) else None

    def authenticate(self, presented: str) -> VirtualKey:
        """The usable key for ``presented``; :class:`KeyRefused` (401) otherwise."""
        key = self.find(presented)
        if key is None:
            raise KeyRefused("invalid API key", status=401, code="invalid_api_key")
        refusal = key.refusal(self._clock())
        if refusal is not None:
            raise refusal
        return key

    def update(
        self,
        name: str,
        *,
        budget_usd: Decimal | None = _UNSET,
        period: Period = _UNSET,
        rpm: int | None = _UNSET,
        tpm: int | None = _UNSET,
        policies: Sequence[str] = _UNSET,
        models: Sequence[str] = _UNSET,
        expires_at: float | None = _UNSET,
    ) -> VirtualKey:
        """Change what ``name`` may do; arguments left out stay as they are (None clears
        a limit; a budget cleared takes its period with it). A revoked key cannot be
        changed: :class:`KeyRevokedError`."""
        current = self.require(name)
        if current.revoked_at is not None:
            raise KeyRevokedError(f"key {name!r} is revoked: it cannot be changed "
                                  "(create a new key)")  # fmt: skip
        given = {
            "budget_usd": budget_usd, "period": period, "rpm": rpm, "tpm": tpm,
            "policies": policies, "models": models, "expires_at": expires_at,
        }  # fmt: skip
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not _UNSET}
        for field in ("policies", "models"):
            if field in changes:
                changes[field] = tuple(changes[field])
        period_given = "period" in changes
        if changes.get("budget_usd", current.budget_usd) is None and not period_given:
            changes["period"] = Period.MONTH  # no budget, no period: a later budget is monthly
        updated = current.with_changes(**changes)
        _check_limits(
            updated, period_given=period_given, expiry_given="expires_at" in changes,
            now=self._clock(),
        )  # fmt: skip
        row = dict(zip(_COLUMNS, _row(updated), strict=True))
        columns = [c for c in _COLUMNS if c not in ("name", "key_hash", "prefix", "created_at")]
        sets = ", ".join(f"{c} = ?" for c in columns)
        self.store.execute(
            f"UPDATE virtual_keys SET {sets} WHERE name = ?",
            (*(row[c] for c in columns), name),
        )
        return _key(_row(updated))

    def spend(self, key: VirtualKey) -> dict[str, Any]:
        """What ``key`` spent in its budget's current period (in all, without a budget)
        as the trace store holds it (its writer is well under a second behind), and
        what is left of the budget: ``spent_usd``, ``remaining_usd``."""
        from turnout.limits.ledger import spend_query
        from turnout.limits.periods import window_of

        period = key.period if key.budget_usd is not None else Period.TOTAL
        rows = self.store.query(*spend_query(key.name, window_of(period, self._clock())))
        spent = int(rows[0][0] or 0) if rows else 0
        out: dict[str, Any] = {"spent_usd": str(pico_to_cost(spent))}
        if key.budget_usd is not None:
            left = max(0, cost_to_pico(key.budget_usd) - spent)
            out["remaining_usd"] = str(pico_to_cost(left))
        return out

    def revoke(self, name: str) -> VirtualKey:
        """Revoke ``name`` (at once, for good); revoking twice keeps the first time."""
        current = self.require(name)
        if current.revoked_at is not None:
            return current
        now = self._clock()
        self.store.execute("UPDATE virtual_keys SET revoked_at = ? WHERE name = ?", (now, name))
        return current.with_changes(revoked_at=now)


def key_summary(key: VirtualKey) -> dict[str, Any]:
    """A key's record as JSON-ready values (the hash left out: it is nobody's business)."""
    from turnout.keys.model import format_time

    return {
        "name": key.name,
        "prefix": key.prefix,
        "created_at": format_time(key.created_at),
        "budget_usd": None if key.budget_usd is None else str(key.budget_usd),
        "period": None if key.budget_usd is None else key.period.value,  # a budget's only
        "rpm": key.rpm,
        "tpm": key.tpm,
        "policies": list(key.policies),
        "models": list(key.models),
        "expires_at": format_time(key.expires_at),
        "revoked_at": format_time(key.revoked_at),
        "status": _status(key),
    }


def _status(key: VirtualKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and time.time() >= key.expires_at:
        return "expired"
    return "active"


UPDATABLE_FIELDS = _UPDATABLE
