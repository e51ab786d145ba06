"""The example files parse and hang together (the YAML, the cases, the code-step references).

These checks use only yaml.safe_load and the settings loader, so they hold whatever the workflow
loader does; loading the workflows through turnout's own loader is a separate test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.config.loader import load_settings
from turnout.workflows.callables import resolve_callable

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
YAML_FILES = sorted(EXAMPLES.rglob("*.yaml"))
WORKFLOWS = sorted(EXAMPLES.glob("*/workflow.yaml"))
CONFIGS = sorted(
    p for p in EXAMPLES.glob("*/turnout*.yaml") if (p.parent / "workflow.yaml").is_file()
)  # the workflow examples' configs (examples/gateway has no workflow)
CHECK_KINDS = {"contains_all", "contains_any", "regex", "json", "max_chars", "python"}
ANNOTATION = {
    "scope": {"single-file", "multi-file", "cross-service"},
    "domain": {"docs", "config", "tests", "feature", "security", "schema", "refactor"},
    "ambiguity": {"low", "medium", "high"},
}
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w-]*)")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _cases(example: str) -> list[dict[str, Any]]:
    lines = (EXAMPLES / example / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _check_kind(check: dict[str, Any]) -> str:
    kinds = set(check) - {"required"}
    assert len(kinds) == 1, check
    return kinds.pop()


def test_the_expected_example_files_exist() -> None:
    for example in ("csv_export", "support_ticket"):
        for name in ("workflow.yaml", "turnout.yaml", "turnout.hosted.yaml", "cases.jsonl"):
            assert (EXAMPLES / example / name).is_file(), f"{example}/{name}"
    assert (EXAMPLES / "README.md").is_file()
    assert len(WORKFLOWS) == 2


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_yaml_file_parses(path: Path) -> None:
    _load(path)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.parent.name)
def test_workflow_structure(path: Path) -> None:
    wf = _load(path)
    assert re.fullmatch(r"[a-z0-9_-]+", wf["name"])
    inputs = wf["inputs"]
    assert inputs
    seen: set[str] = set()
    for step in wf["steps"]:
        sid = step["id"]
        assert re.fullmatch(r"[a-z0-9_-]+", sid)
        assert sid not in seen and sid not in inputs, sid
        for dep in step.get("inputs", []):
            assert dep in seen, f"{sid}: input {dep!r} is not an earlier step"
        kind = step.get("kind", "llm")
        if kind == "code":
            assert "prompt" not in step, sid
            resolve_callable(step["run"], base_dir=path.parent, where=f"{path}:{sid}")
        else:
            assert kind == "llm", sid
            visible = set(inputs) | set(step.get("inputs", []))
            text = step["prompt"] + step.get("system", "")
            assert set(PLACEHOLDER.findall(text)) <= visible, sid
            assert 0 < step["max_tokens"] <= 260, sid
            for key, value in step["annotation"].items():
                assert value in ANNOTATION[key], f"{sid}: {key}={value}"
        for check in step.get("checks", []):
            kind_of_check = _check_kind(check)
            assert kind_of_check in CHECK_KINDS, f"{sid}: {check}"
            if kind_of_check == "python":
                resolve_callable(check["python"], base_dir=path.parent, where=sid)
            if kind_of_check == "regex":
                re.compile(check["regex"])
        seen.add(sid)


def test_csv_export_has_one_keyword_per_check() -> None:
    wf = _load(EXAMPLES / "csv_export" / "workflow.yaml")
    steps = {s["id"]: s for s in wf["steps"]}
    assert list(steps) == ["planner", "implementer", "reviewer", "verifier"]
    assert steps["implementer"]["inputs"] == ["planner"]
    assert steps["reviewer"]["inputs"] == ["planner", "implementer"]
    assert steps["verifier"]["inputs"] == ["implementer", "reviewer"]
    counts = {sid: len(s["checks"]) for sid, s in steps.items()}
    assert counts == {"planner": 5, "implementer": 4, "reviewer": 4, "verifier": 3}
    for sid, step in steps.items():
        for check in step["checks"]:
            kind = _check_kind(check)
            assert kind in {"contains_any", "contains_all"}, sid
            if kind == "contains_all":
                assert len(check[kind]) == 1, f"{sid}: contains_all must name one keyword"
            # Every heading the prompt asks for is matched by its own check.
        headings = re.findall(r"^(?:## (.+)|(\w+): <.*>)$", step["prompt"], re.M)
        headings = [a or b for a, b in headings]
        assert len(headings) == counts[sid], sid
        for heading, check in zip(headings, step["checks"], strict=True):
            words = check.get("contains_any") or check["contains_all"]
            assert any(w.lower() in heading.lower() for w in words), f"{sid}: {heading}"


def test_support_ticket_has_the_ten_steps_with_their_tiers() -> None:
    wf = _load(EXAMPLES / "support_ticket" / "workflow.yaml")
    kinds = {s["id"]: s.get("tier", s.get("kind")) for s in wf["steps"]}
    assert kinds == {
        "receive": "code",
        "lookup_customer": "code",
        "recent_tickets": "code",
        "categorize": "efficient",
        "extract": "efficient",
        "summarize_history": "efficient",
        "decide_escalation": "efficient",
        "draft_reply": "frontier",
        "policy_check": "efficient",
        "send_or_escalate": "code",
    }
    extract = next(s for s in wf["steps"] if s["id"] == "extract")
    assert extract["output"] == "json"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_turnout_config_loads_and_policies_name_llm_steps(path: Path) -> None:
    settings = load_settings(path)
    wf = _load(path.parent / "workflow.yaml")
    llm_steps = {s["id"] for s in wf["steps"] if s.get("kind", "llm") == "llm"}
    expected = (
        {"all_strong", "all_cheap", "mixed", "rules", "cascade"}
        if path.parent.name == "csv_export"
        else {"all_strong", "all_cheap", "by_tier"}
    )
    assert set(settings.policies) == expected
    for policy in settings.policies.values():
        assert set(policy.options.get("steps", {})) <= llm_steps, policy.name
    tiers = {m.tier.value for m in settings.models.values()}
    assert tiers == {"efficient", "frontier"}


@pytest.mark.parametrize("example", ["csv_export", "support_ticket"])
def test_local_pool_prices_the_stand_ins(example: str) -> None:
    settings = load_settings(EXAMPLES / example / "turnout.yaml")
    assert settings.providers["local"].kind == "local"
    smol, qwen = settings.models["smol"], settings.models["qwen"]
    assert (smol.id, smol.context_window) == ("smollm2-135m-instruct", 4096)
    assert (qwen.id, qwen.context_window) == ("qwen2.5-coder-0.5b-instruct", 4096)
    assert smol.price_label and "claude-haiku-4-5" in smol.price_label
    assert qwen.price_label and "claude-opus-4-5" in qwen.price_label


@pytest.mark.parametrize("example", ["csv_export", "support_ticket"])
def test_hosted_config_reads_its_key_from_the_environment(example: str) -> None:
    settings = load_settings(EXAMPLES / example / "turnout.hosted.yaml")
    for provider in settings.providers.values():
        assert provider.kind == "openai"
        assert provider.options["api_key_env"] == "OPENAI_API_KEY"
        assert provider.options["base_url"].startswith("https://")


@pytest.mark.parametrize(
    ("example", "key", "minimum"), [("csv_export", "task", 8), ("support_ticket", "ticket", 20)]
)
def test_cases_parse_and_carry_the_workflow_input(example: str, key: str, minimum: int) -> None:
    wf = _load(EXAMPLES / example / "workflow.yaml")
    assert wf["inputs"] == [key]
    cases = _cases(example)
    assert len(cases) >= minimum
    for case in cases:
        assert set(case) == {key}, case
        assert isinstance(case[key], str)
        assert case[key].strip()
    assert len({c[key] for c in cases}) == len(cases), "duplicate cases"


def test_ticket_cases_have_headers_and_cover_the_categories() -> None:
    tickets = [c["ticket"] for c in _cases("support_ticket")]
    for ticket in tickets:
        first, second = ticket.split("\n")[:2]
        assert first.startswith("From: "), first
        assert second.startswith("Subject: "), second
    text = "\n".join(tickets).lower()
    for needle in ("ord-", "inv-", "<html", "wrote:", "original message", "refund", "password"):
        assert needle in text, needle
