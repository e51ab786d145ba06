"""The ``gateway:`` section of turnout.yaml, as the gateway uses it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.execution.run import StreamCutRule


@dataclass(frozen=True, slots=True)
class CorsConfig:
    allow_origins: tuple[str, ...]
    allow_headers: tuple[str, ...] = ("*",)
    max_age_s: int = 600


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """``default_policy`` serves ``model: auto`` (and unknown models when
    ``unknown_models: default_policy``); unset, it is the first policy in the file."""

    host: str = "127.0.0.1"
    port: int = 8000
    default_policy: str | None = None
    unknown_models: Literal["reject", "default_policy"] = "reject"
    max_body_bytes: int = 4 * 1024 * 1024
    on_stream_cut: StreamCutRule | None = None
    """None: ``executor.on_stream_cut``. ``restart`` cannot be honoured once text has
    reached an SSE client: such a stream ends with an error event instead."""
    cors: CorsConfig | None = None
    shutdown_timeout_s: float = 30.0
    auth: Literal["keys", "none"] | None = None
    """None: ``keys`` unless the host is loopback (see :meth:`auth_for`)."""
    admin_key_env: str = "TURNOUT_ADMIN_KEY"
    key_cache_s: float = 30.0
    per_model_limits: bool = False
    spill: str | None = None
    spill_max_bytes: int = 256 * 1024 * 1024
    source: str | None = field(default=None, compare=False)
    """The config file, named by the errors of its ``gateway:`` section."""

    def auth_for(self, host: str) -> Literal["keys", "none"]:
        """The auth mode on ``host``: keys by default off loopback; ``none`` refused there."""
        loopback = is_loopback(host)
        if self.auth == "none" and not loopback:
            raise ConfigError(
                f"auth: none is allowed only on a loopback host, not {host!r} "
                "(use auth: keys, or --host 127.0.0.1)",
                file=self.source,
                field="gateway.auth",
            )
        return self.auth or ("none" if loopback else "keys")

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        raw: Mapping[str, Any] = settings.gateway
        cors = raw.get("cors")
        default = raw.get("default_policy") or next(iter(settings.policies), None)
        return cls(
            host=raw.get("host", "127.0.0.1"),
            port=raw.get("port", 8000),
            default_policy=default,
            unknown_models=raw.get("unknown_models", "reject"),
            max_body_bytes=raw.get("max_body_bytes", 4 * 1024 * 1024),
            on_stream_cut=raw.get("on_stream_cut"),
            cors=CorsConfig(
                tuple(cors["allow_origins"]), tuple(cors["allow_headers"]), cors["max_age_s"]
            )
            if cors and cors.get("allow_origins")
            else None,
            shutdown_timeout_s=raw.get("shutdown_timeout_s", 30.0),
            auth=raw.get("auth"),
            admin_key_env=raw.get("admin_key_env") or "TURNOUT_ADMIN_KEY",
            key_cache_s=raw.get("key_cache_s", 30.0),
            per_model_limits=bool(raw.get("per_model_limits", False)),
            spill=raw.get("spill"),
            spill_max_bytes=raw.get("spill_max_bytes", 256 * 1024 * 1024),
            source=settings.source,
        )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
