"""A real two-step workflow on the real local model (SmolLM2 via llama.cpp), end to end
through the CLI, traced into a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnout.cli.main import main
from turnout.tracing import open_store

pytestmark = pytest.mark.local_model

CONFIG = """
providers:
  local: {kind: local}
models:
  smol:
    provider: local
    id: smollm2-135m-instruct
    tier: efficient
    price_sheet: claude-haiku-4-5
    price_label: "local stand-in priced at claude-haiku-4-5 rates"
    context_window: 2048
policies:
  cheap: {kind: static, model: smol}
"""

WORKFLOW = """
name: two-step
inputs: [topic]
steps:
  - id: answer
    prompt: "In one sentence, what is {{ topic }}?"
    max_tokens: 40
    temperature: 0
    checks: [{max_chars: 600}]
  - id: shout
    inputs: [answer]
    prompt: "Repeat this sentence in capital letters: {{ answer }}"
    max_tokens: 48
    temperature: 0
  - id: measure
    kind: code
    inputs: [shout]
    run: "steps:measure"
"""


def test_two_step_workflow_on_smollm2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "turnout.yaml").write_text(CONFIG)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / "steps.py").write_text(
        "def measure(inputs):\n    return {'chars': len(inputs['shout'])}\n"
    )
    store = tmp_path / "traces.db"
    code = main(["run", "wf.yaml", "-c", "turnout.yaml", "--policy", "cheap",
                 "-i", "topic=a CSV file", "--json", "--store", str(store)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out)
    answer, shout, measure = data["steps"]
    for step in (answer, shout):
        assert step["model"] == "smol" and step["status"] == "succeeded"
        assert step["input_tokens"] > 5 and 0 < step["output_tokens"] <= 48
        assert step["cost_usd"] > 0 and step["latency_s"] > 0
    assert measure["output"]["chars"] == len(shout["output"]) > 0
    assert data["price_labels"] == {"smol": "local stand-in priced at claude-haiku-4-5 rates"}
    trace = open_store(str(store)).get_run(data["run_id"])
    assert trace is not None and trace.run.status == "succeeded"
    assert [a.model for a in trace.attempts] == ["smol", "smol"]
    assert trace.steps[1].output == shout["output"]
