"""The `gateway:` section: defaults, validation, what the gateway makes of it."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config import settings_from_dict
from turnout.errors import ConfigError
from turnout.gateway.config import CorsConfig, GatewayConfig
from turnout.gateway.local_pool import local_settings


def test_defaults(pool_dict: dict[str, Any]) -> None:
    config = GatewayConfig.from_settings(settings_from_dict(pool_dict))
    assert (config.host, config.port, config.max_body_bytes) == ("127.0.0.1", 8000, 4 * 1024 * 1024)
    assert config.default_policy == "all_frontier"  # the first policy in the file
    assert config.unknown_models == "reject" and config.on_stream_cut is None
    assert config.cors is None  # off by default


def test_every_field(pool_dict: dict[str, Any]) -> None:
    pool_dict["gateway"] = {
        "host": "0.0.0.0",
        "port": 9000,
        "default_policy": "mixed",
        "unknown_models": "default_policy",
        "max_body_bytes": 1000,
        "on_stream_cut": "fail",
        "cors": {"allow_origins": ["https://app.example.com"]},
        "shutdown_timeout_s": 5,
    }
    config = GatewayConfig.from_settings(settings_from_dict(pool_dict))
    assert config == GatewayConfig(
        "0.0.0.0", 9000, "mixed", "default_policy", 1000, "fail",
        CorsConfig(("https://app.example.com",), ("*",), 600), 5.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gateway", "words"),
    [
        ({"default_policy": "nope"}, "gateway.default_policy"),
        ({"port": 70000}, "port"),
        ({"on_stream_cut": "maybe"}, "on_stream_cut"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_values_name_the_field(
    pool_dict: dict[str, Any], gateway: dict[str, Any], words: str
) -> None:
    pool_dict["gateway"] = gateway
    with pytest.raises(ConfigError, match=words):
        settings_from_dict(pool_dict)


def test_the_embedded_local_pool() -> None:
    settings = local_settings()
    assert set(settings.models) == {"smol", "qwen"}
    assert GatewayConfig.from_settings(settings).default_policy == "rules"


def test_auth_none_off_loopback_names_the_file_as_every_config_error_does(
    pool_dict: dict[str, Any], tmp_path: Any
) -> None:
    import yaml

    from turnout.config import load_settings

    pool_dict["gateway"] = {"auth": "none", "host": "0.0.0.0"}
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(pool_dict))
    config = GatewayConfig.from_settings(load_settings(path))
    with pytest.raises(ConfigError) as info:
        config.auth_for("0.0.0.0")
    assert str(info.value).startswith(f"{path}: gateway.auth: auth: none is allowed only")
