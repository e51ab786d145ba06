"""examples/gateway/agent.py end to end: it starts `turnout serve` (here over the fake
upstream instead of the local models), runs its four steps with per-step headers, stops
the gateway and prints the weekly report of the traces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.gateway_rig import KEY, KEY_ENV
from turnout.config.loader import load_settings
from turnout.gateway.config import GatewayConfig
from turnout.testing import FakeOpenAI

AGENT = Path(__file__).resolve().parents[2] / "examples" / "gateway" / "agent.py"


def test_gateway_example_configs_load() -> None:
    for name in ("turnout.yaml", "turnout.hosted.yaml"):
        settings = load_settings(AGENT.parent / name)
        assert GatewayConfig.from_settings(settings).default_policy == "rules"
        assert {m.tier.value for m in settings.models.values()} == {"efficient", "frontier"}


def test_agent_example(tmp_path: Path) -> None:
    with FakeOpenAI.start_in_thread(reply="done") as up:
        config = tmp_path / "turnout.yaml"
        config.write_text(
            f"""
providers:
  up: {{kind: openai, base_url: "{up.base_url}", api_key_env: {KEY_ENV}}}
models:
  smol: {{provider: up, id: smol-1, tier: efficient, price_sheet: claude-haiku-4-5}}
  qwen: {{provider: up, id: qwen-1, tier: frontier, price_sheet: claude-opus-4-5}}
policies:
  rules:
    kind: rules
    must_stay_frontier: [{{domain: security}}, {{ambiguity: high}}]
    rules: [{{when: {{domain: docs}}, tier: efficient}}, {{when: {{ambiguity: low}}, tier: efficient}}]
    default: frontier
"""
        )
        store = tmp_path / "traces.db"
        out = subprocess.run(
            [
                sys.executable,
                str(AGENT),
                "--config",
                str(config),
                "--store",
                str(store),
                "--session",
                "s-1",
            ],
            env={**os.environ, KEY_ENV: KEY},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    models = {line.split()[0]: line.split()[1] for line in lines[:4]}
    assert models == {"plan": "qwen", "implement": "smol", "review": "qwen", "docs": "smol"}
    assert "session s-1: 4 steps" in out.stdout
    assert [r.model for r in up.requests] == ["qwen-1", "smol-1", "qwen-1", "smol-1"]
    report = out.stdout.split("session s-1: 4 steps", 1)[1]
    assert "Total spend" in report and "over 4 model calls" in report
    assert "Sessions 1: average" in report  # the four steps are one session
    assert "feature-agent" in report
