"""Virtual keys: what a key may do, how one is made, and how it is recognised.

A key is ``tk-`` followed by 32 random bytes in URL-safe base64 (``secrets``). It is
shown once, when created; the store keeps only its SHA-256 (hex). A key carries 256
bits of randomness, so a plain hash is enough: nothing to guess, no need for a slow
password hash (which would cost milliseconds on every request). A presented key is
recognised by its hash, and the stored hash is compared with
:func:`hmac.compare_digest` (constant time).

The ``prefix`` kept beside the hash (``tk-AbCd``, the first 7 characters) lets
people tell keys apart in listings; it is too short to help a guesser.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from turnout.errors import ConfigError

KEY_PREFIX = "tk-"
_RANDOM_BYTES = 32
_SHOWN = 7


class Period(enum.Enum):
    """The period a key's budget applies to; ``total`` never resets."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


class KeyRefused(Exception):
    """Why a presented key is not accepted. ``status``: 401 (unknown, revoked,
    expired) or 403 (the key may not use this policy or model). The message never
    holds the key."""

    def __init__(self, message: str, *, status: int, code: str, name: str | None = None) -> None:
        self.status = status
        self.code = code
        self.name = name
        """The key's name when the key is known (revoked, expired, not allowed)."""
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A key's record, as stored (never the key itself)."""

    name: str
    key_hash: str
    prefix: str
    created_at: float
    budget_usd: Decimal | None = None
    period: Period = Period.MONTH
    rpm: int | None = None
    tpm: int | None = None
    policies: tuple[str, ...] = ()
    """Policies the key may name; empty: any. A key with policies and no ``models``
    may name only those policies, not a pool model directly."""
    models: tuple[str, ...] = ()
    """Pool models that may answer the key's requests, named directly or picked by a
    policy (a policy's other choices are dropped); empty: any."""
    expires_at: float | None = None
    revoked_at: float | None = None

    def refusal(self, now: float) -> KeyRefused | None:
        """Why this key cannot be used at ``now`` (revoked, expired), else None."""
        if self.revoked_at is not None:
            return KeyRefused(
                f"key {self.name!r} is revoked", status=401, code="key_revoked", name=self.name
            )
        if self.expires_at is not None and now >= self.expires_at:
            return KeyRefused(
                f"key {self.name!r} has expired", status=401, code="key_expired", name=self.name
            )
        return None

    def allows_policy(self, policy: str) -> bool:
        return not self.policies or policy in self.policies

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def may_name_model(self, model: str) -> bool:
        """Whether a request with this key may name pool model ``model`` directly."""
        if self.models:
            return model in self.models
        return not self.policies  # bound to its policies: no way around them

    def check_route(self, *, policy: str | None = None, model: str | None = None) -> None:
        """Raise :class:`KeyRefused` (403) when the key may not use this policy or model."""
        if policy is not None and not self.allows_policy(policy):
            raise KeyRefused(
                f"key {self.name!r} may not use policy {policy!r}",
                status=403,
                code="policy_not_allowed",
                name=self.name,
            )
        if model is not None and not self.may_name_model(model):
            raise KeyRefused(
                f"key {self.name!r} may not use model {model!r}",
                status=403,
                code="model_not_allowed",
                name=self.name,
            )

    def with_changes(self, **changes: object) -> VirtualKey:
        return replace(self, **changes)  # type: ignore[arg-type]


def generate_key() -> str:
    """A new random key: ``tk-`` and 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def shown_prefix(key: str) -> str:
    return key[:_SHOWN]


def looks_like_key(text: str) -> bool:
    return text.startswith(KEY_PREFIX) and 16 <= len(text) <= 128


def parse_names(text: str | None) -> tuple[str, ...]:
    """``a,b , c`` as ``("a", "b", "c")``; None or blank: ``()``."""
    if not text:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def check_scopes(
    changes: Mapping[str, Any], *, policies: Collection[str], models: Collection[str]
) -> None:
    """Raise :class:`~turnout.errors.ConfigError` (naming the field) when ``changes``
    bind a key to a policy or model the gateway does not have: such a key could never
    be used as meant."""
    for field, what, known in (("policies", "policy", policies), ("models", "model", models)):
        unknown = [n for n in changes.get(field) or () if n not in known]
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"unknown {what} {unknown[0]!r} (known: {names})", field=field)


KEY_FIELDS = ("budget_usd", "period", "rpm", "tpm", "policies", "models", "expires")
"""What may be asked of a key, as the admin API's JSON spells it (``turnout keys``: the
same as options, ``--budget-usd`` ...)."""
_CLEAR = ("", "none", "null")


def _cleared(value: object, *words: str) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in (*_CLEAR, *words))


def key_changes(raw: Mapping[str, object], *, also: Sequence[str] = ()) -> dict[str, Any]:
    """What ``raw`` (fields of :data:`KEY_FIELDS` and their values, as the admin API's
    JSON body or ``turnout keys``' options give them) asks of a key, in the arguments of
    :meth:`~turnout.keys.store.KeyStore.create` and ``update``. One set of rules for both:

    - ``budget_usd``: an amount (a number or its text); ``null`` / ``none`` clears it;
    - ``period``: ``day``, ``week``, ``month`` or ``total`` (with a budget only);
    - ``rpm``, ``tpm``: a whole number; ``0`` or ``null`` / ``none``: no limit;
    - ``policies``, ``models``: a list of names, or ``a,b`` as text; empty or ``null``: any;
    - ``expires``: a date (00:00 UTC of that day) or an ISO 8601 time; ``null`` / ``never``
      / ``none``: never.

    Raises :class:`~turnout.errors.ConfigError` naming the field (an unknown one named
    with the known ones, and ``also``: the caller's own). What a value may be (a
    budget's range, an expiry in the future) is the store's to check."""
    out: dict[str, Any] = {}
    for field, value in raw.items():
        if field not in KEY_FIELDS:
            known = ", ".join((*also, *KEY_FIELDS))
            raise ConfigError(f"unknown field (known: {known})", field=field)
        if field == "budget_usd":
            out[field] = None if _cleared(value) else _amount(value, field)
        elif field == "period":
            try:
                out[field] = Period(value)
            except ValueError:
                raise ConfigError("expected day, week, month or total", field=field) from None
        elif field in ("rpm", "tpm"):
            out[field] = None if _cleared(value) else (_whole(value, field) or None)
        elif field in ("policies", "models"):
            out[field] = _names(value, field)
        elif _cleared(value, "never"):
            out["expires_at"] = None
        elif not isinstance(value, str):
            raise ConfigError("expected a date, an ISO 8601 time, or never", field=field)
        else:
            try:
                out["expires_at"] = parse_expiry(value)
            except ValueError as exc:
                raise ConfigError(str(exc), field=field) from None
    return out


def _amount(value: object, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(f"not a number: {value!r}", field=field)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"not a number: {value!r}", field=field) from None
    if not amount.is_finite():
        raise ConfigError(f"not a number: {value!r}", field=field)
    return amount


def _whole(value: object, field: str) -> int:
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.removeprefix("-").isdigit():
            return int(text)
        raise ConfigError("expected a whole number (0 or null: no limit)", field=field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("expected a whole number (0 or null: no limit)", field=field)
    return value


def _names(value: object, field: str) -> tuple[str, ...]:
    if value is None or isinstance(value, str):
        return parse_names(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_names(",".join(value))
    raise ConfigError("expected a list of names", field=field)


def parse_expiry(text: str) -> float:
    """``2026-12-31`` (00:00 UTC of that day: the end of the day is not implied) or a
    full ISO 8601 time; returns epoch seconds. Raises ValueError naming the text."""

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date or ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)  # shown in UTC, so it must be a UTC time Python can hold
    except OverflowError:
        raise ValueError(f"outside the years 1 to 9999 in UTC: {text!r}") from None
    return moment.timestamp()


def format_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # a stored time no calendar date holds
        return f"{epoch:.0f} (epoch seconds)"


def names_json(names: Sequence[str]) -> str:
    import json

    return json.dumps(list(names))
