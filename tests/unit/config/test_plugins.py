"""Plugins: a package's policy, provider and check kinds work from YAML like built-in ones.

The plugin is tests/fixtures/plugin_pkg, installed the way pip lays a package out (its
package directory and a ``.dist-info`` holding ``entry_points.txt``, made from its
pyproject.toml) into a temporary directory put on ``sys.path``; turnout finds it through
``importlib.metadata``'s entry points, as it would find any installed plugin.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout.checks import build_checks
from turnout.config import load_settings
from turnout.config.kinds import CHECKS, POLICIES, PROVIDERS
from turnout.errors import ConfigError
from turnout.policies import RequestContext, build_policy
from turnout.providers import build_provider
from turnout.types import ChatRequest, Message

PLUGIN = Path(__file__).parents[2] / "fixtures" / "plugin_pkg"


def install_plugin(target: Path) -> Path:
    """``pip install --target`` without a build backend: the package and its dist-info."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    shutil.copytree(PLUGIN / "src" / "turnout_demo_plugin", target / "turnout_demo_plugin")
    info = target / f"turnout_demo_plugin-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("site"))


@pytest.fixture
def plugin(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin importable and the registries as they were before, afterwards."""
    saved = [(r, dict(r._kinds), r._scanned) for r in (POLICIES, PROVIDERS, CHECKS)]
    monkeypatch.syspath_prepend(str(plugin_dir))
    for registry in (POLICIES, PROVIDERS, CHECKS):
        registry.rescan()  # entry points are read once per process: again, with the plugin
    yield plugin_dir
    for registry, kinds, scanned in saved:
        registry._kinds, registry._scanned = kinds, scanned
    for name in [m for m in sys.modules if m.startswith("turnout_demo_plugin")]:
        del sys.modules[name]


CONFIG = """
providers:
  echoes: {kind: echo, prefix: "echo: ", repeat: 2, timeouts: {read: 5}}
models:
  parrot: {provider: echoes, id: parrot-1, tier: efficient, price: {input: 0.1, output: 0.1}}
policies:
  pin: {kind: pinned, model: parrot, weight: 3}
"""


def write(tmp_path: Path, text: str, name: str = "turnout.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_plugin_policy_and_provider_load_from_yaml(plugin: Path, tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CONFIG))
    assert settings.providers["echoes"].timeouts.read == 5
    assert dict(settings.providers["echoes"].options) == {"prefix": "echo: ", "repeat": 2}
    policy = build_policy("pin", settings)
    decision = policy.decide(RequestContext(messages=(Message.user("hi"),)))
    assert decision.models == ("parrot",)
    assert decision.reason == "pinned (weight 3)"
    provider = build_provider(settings.providers["echoes"], list(settings.models.values()))
    request = ChatRequest(model="parrot-1", messages=(Message.user("hello"),))
    answer = asyncio.run(provider.complete(request))
    assert answer.content == "echo: hello echo: hello"


def test_plugin_options_get_their_defaults(plugin: Path, tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CONFIG.replace(", weight: 3", "")))
    assert dict(settings.policies["pin"].options) == {"model": "parrot", "weight": 1}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("weight: 3", "weight: 30", "policies.pin.weight: Input should be less than or equal"),
        ("weight: 3", "wieght: 3", "policies.pin.wieght: unknown field"),
        ("model: parrot, ", "", "policies.pin.model: required field is missing"),
        ("model: parrot", "model: eagle", "policies.pin.model: unknown model 'eagle'"),
        ("repeat: 2", "repeat: 0", "providers.echoes.repeat: 0 is less than the minimum of 1"),
        ("repeat: 2", "repeats: 2", "providers.echoes.repeats: unknown field"),
        ('prefix: "echo: ", ', "", "providers.echoes.prefix: required field is missing"),
        ("kind: pinned", "kind: pined", "policies.pin.kind: unknown policy kind 'pined' (did"),
        ("kind: echo", "kind: broken", "plugin provider kind 'broken'"),
    ],
)
def test_a_bad_plugin_option_is_one_line_naming_file_and_field(
    plugin: Path, tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in CONFIG
    message = load_error(tmp_path, CONFIG.replace(old, new, 1))
    assert message.startswith(f"{tmp_path / 'turnout.yaml'}: ")
    assert expected in message


def test_a_plugin_that_cannot_be_imported_is_named(plugin: Path, tmp_path: Path) -> None:
    message = load_error(tmp_path, CONFIG.replace("kind: echo", "kind: broken"))
    assert message == (
        f"{tmp_path / 'turnout.yaml'}: providers.echoes.kind: plugin provider kind 'broken' "
        "(turnout.providers: turnout_demo_plugin.not_there:NOTHING) cannot be loaded: "
        "ModuleNotFoundError: No module named 'turnout_demo_plugin.not_there'"
    )


def test_unknown_kinds_list_the_plugins_kinds(plugin: Path, tmp_path: Path) -> None:
    message = load_error(tmp_path, CONFIG.replace("kind: pinned", "kind: magic"))
    assert "unknown policy kind 'magic' (known: ab, cascade, complexity," in message
    assert "pinned" in message


def test_without_the_plugin_its_kinds_are_unknown(tmp_path: Path) -> None:
    message = load_error(tmp_path, CONFIG)
    assert "providers.echoes.kind: unknown provider kind 'echo' (known: " in message


def test_plugin_check_from_workflow_yaml(plugin: Path) -> None:
    checks = build_checks(
        [
            {"starts_with": "Dear"},
            {"starts_with": {"prefix": "Hi", "case_sensitive": True}, "required": False},
            "json",
        ],
        where_prefix="step 'reply': checks",
        file="support.yaml",
    )
    polite, hi, _ = checks
    assert polite.name == "starts_with[Dear]" and polite.required
    assert polite.run("dear Ann, ...", "dear Ann, ...").passed
    assert not hi.required
    assert not hi.run("hi there", "hi there").passed


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"starts_with": "Dear", "case_sensitiv": True},
            "support.yaml: step 'reply': checks[0]: starts_with.case_sensitiv: unknown field",
        ),
        (
            {"starts_with": ""},
            "support.yaml: step 'reply': checks[0]: starts_with.prefix: String should have "
            "at least 1 character",
        ),
        (
            "starts_with",
            "support.yaml: step 'reply': checks[0]: starts_with.prefix: required field is missing",
        ),
        (
            {"starts_wth": "Dear"},
            "support.yaml: step 'reply': checks[0]: unknown check kind 'starts_wth' "
            "(did you mean 'starts_with'? known: ",
        ),
    ],
)
def test_a_bad_plugin_check_is_one_line(plugin: Path, entry: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_checks([entry], where_prefix="step 'reply': checks", file="support.yaml")
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


WORKFLOW = """
name: greet
inputs: [who]
steps:
  - id: reply
    prompt: "Dear {{ who }}"
    checks:
      - starts_with: "echo: dear"
      - {starts_with: nope, required: false}
"""


def test_turnout_run_uses_the_plugins_kinds(plugin_dir: Path, tmp_path: Path) -> None:
    """The CLI, in a new process, with the plugin on PYTHONPATH (as if pip-installed)."""
    config = write(tmp_path, CONFIG)
    workflow = write(tmp_path, WORKFLOW, "greet.yaml")
    env = {**os.environ, "PYTHONPATH": str(plugin_dir)}
    turnout = Path(sys.executable).parent / "turnout"
    args = ["run", workflow, "-c", config, "-p", "pin", "--no-trace", "--json", "-i", "who=Ann"]
    done = subprocess.run(
        [turnout, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (step,) = json.loads(done.stdout)["steps"]
    assert (step["model"], step["reason"]) == ("parrot", "pinned (weight 3)")
    assert step["output"] == "echo: Dear Ann echo: Dear Ann"
    assert [(c["name"], c["passed"]) for c in step["checks"]] == [
        ("starts_with[echo: dear]", True),
        ("starts_with[nope]", False),
    ]


def test_entry_points_are_read_once_and_only_for_an_unknown_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from turnout.config import kinds

    calls: list[str] = []

    def entry_points(group: str) -> list[Any]:
        calls.append(group)
        return []

    monkeypatch.setattr(kinds, "entry_points", entry_points)
    registry = kinds.Registry("turnout.tests", "test", {"a": kinds.Kind("json:dumps")})
    assert registry.get("a").factory()({"x": 1}) == '{"x": 1}'
    assert calls == []
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"unknown test kind 'b' \(known: a\)"):
            registry.get("b", file="f.yaml", field="things.b.kind")
    assert calls == ["turnout.tests"]


def test_importing_turnout_reads_no_entry_points() -> None:
    code = (  # (pydantic reads its own group when the first model is made)
        "import importlib.metadata as m, sys\n"
        "real = m.entry_points\n"
        "def entry_points(group):\n"
        "    if group.startswith('turnout'): sys.exit('entry points read: ' + group)\n"
        "    return real(group=group)\n"
        "m.entry_points = entry_points\n"
        "import turnout, turnout.config, turnout.plugins, turnout.policies, turnout.checks\n"
        "from turnout.config import settings_from_dict\n"
        "settings_from_dict({'providers': {'h': {'kind': 'openai', 'base_url': 'http://x/v1'}},"
        " 'models': {}, 'policies': {}})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
