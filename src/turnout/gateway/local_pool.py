"""The embedded local pool ``turnout serve`` uses without a config: the two small
llama.cpp models shipped as Python packages, offline, no API key. The same pool as
``examples/csv_export/turnout.yaml`` (stand-ins priced at hosted rates), with a
default policy that routes by the annotation headers."""

from __future__ import annotations

from typing import Any

from turnout.config.loader import settings_from_dict
from turnout.config.settings import Settings

LOCAL_POOL: dict[str, Any] = {
    "providers": {"local": {"kind": "local"}},
    "models": {
        "smol": {
            "provider": "local",
            "id": "smollm2-135m-instruct",
            "tier": "efficient",
            "price_sheet": "claude-haiku-4-5",
            "price_label": "local stand-in priced at claude-haiku-4-5 rates",
            "context_window": 4096,
        },
        "qwen": {
            "provider": "local",
            "id": "qwen2.5-coder-0.5b-instruct",
            "tier": "frontier",
            "price_sheet": "claude-opus-4-5",
            "price_label": "local stand-in priced at claude-opus-4-5 rates",
            "context_window": 4096,
        },
    },
    "policies": {
        "rules": {
            "kind": "rules",
            "vocabulary": {"domain": ["auth", "payments"]},
            "must_stay_frontier": [
                {"domain": "auth"},
                {"domain": "payments"},
                {"domain": "schema"},
                {"domain": "security"},
                {"ambiguity": "high"},
            ],
            "rules": [
                {"when": {"domain": ["docs", "config", "tests"]}, "tier": "efficient"},
                {"when": {"ambiguity": "low"}, "tier": "efficient"},
            ],
            "default": "frontier",
            "within_tier": "cheapest",
        },
        "cheap": {"kind": "static", "model": "smol"},
        "strong": {"kind": "static", "model": "qwen"},
        "cascade": {"kind": "cascade", "models": ["smol", "qwen"]},
    },
    "gateway": {"default_policy": "rules"},
}


def local_settings() -> Settings:
    return settings_from_dict(LOCAL_POOL)
