from pathlib import Path
from typing import Any

import pytest

from turnout.config import load_settings, settings_from_dict
from turnout.errors import ConfigError
from turnout.types import Tier


def test_loads_the_documented_spelling(tmp_path: Path) -> None:
    f = tmp_path / "turnout.yaml"
    f.write_text(
        """
providers:
  hosted: {kind: openai, base_url: "https://api.example.com/v1", api_key_env: EXAMPLE_API_KEY}
  local:  {kind: local}
models:
  opus:  {provider: hosted, id: claude-opus-4-8, tier: frontier, price: {input: 5.00, output: 25.00, cached_input: 0.50}}
  haiku: {provider: hosted, id: claude-haiku-4-5, tier: efficient, price_sheet: claude-haiku-4-5}
  smol:  {provider: local, id: smollm2-135m-instruct, tier: efficient, price: {input: 1.00, output: 5.00}}
policies:
  all_frontier: {kind: static, model: opus}
  mixed: {kind: per_step, default: opus, steps: {implementer: haiku}}
"""
    )
    s = load_settings(f)
    assert s.models["opus"].tier is Tier.FRONTIER
    assert str(s.models["haiku"].price.input) == "1.0"
    assert s.models["haiku"].context_window == 200000
    assert s.providers["hosted"].options["api_key_env"] == "EXAMPLE_API_KEY"
    assert s.policies["mixed"].options["steps"] == {"implementer": "haiku"}


def _err(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(raw)
    return str(info.value)


def test_unknown_provider_is_named(pool_dict: dict[str, Any]) -> None:
    pool_dict["models"]["opus"]["provider"] = "nowhere"
    assert _err(pool_dict) == (
        "turnout.yaml: models.opus.provider: unknown provider 'nowhere' (known: backup, hosted)"
    )


def test_unknown_model_in_policy_is_named(pool_dict: dict[str, Any]) -> None:
    pool_dict["policies"]["mixed"]["steps"]["planner"] = "gpt-9"
    assert "policies.mixed.steps.planner: unknown model 'gpt-9'" in _err(pool_dict)


def test_unknown_policy_kind(pool_dict: dict[str, Any]) -> None:
    pool_dict["policies"]["x"] = {"kind": "magic"}
    assert "policies.x" in _err(pool_dict)


def test_bad_tier(pool_dict: dict[str, Any]) -> None:
    pool_dict["models"]["opus"]["tier"] = "huge"
    assert "models.opus.tier" in _err(pool_dict)


def test_missing_price(pool_dict: dict[str, Any]) -> None:
    del pool_dict["models"]["opus"]["price"]
    assert "models.opus: needs a price" in _err(pool_dict)


def test_unknown_price_sheet_entry(pool_dict: dict[str, Any]) -> None:
    pool_dict["models"]["haiku"]["price_sheet"] = "claude-haiku-9"
    assert "models.haiku.price_sheet" in _err(pool_dict)


def test_unknown_field_is_rejected(pool_dict: dict[str, Any]) -> None:
    pool_dict["models"]["opus"]["tire"] = "frontier"
    assert "models.opus.tire: unknown field" in _err(pool_dict)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "turnout.yaml"
    f.write_text("providers:\n  a: {kind: openai\nmodels: {}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}: line ") and "malformed YAML" in msg
    assert "\n" not in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_a_misspelt_required_field_is_named_with_the_close_match(
    pool_dict: dict[str, Any],
) -> None:
    pool_dict["models"]["opus"]["teir"] = pool_dict["models"]["opus"].pop("tier")
    message = _err(pool_dict)
    assert message.endswith("models.opus.teir: unknown field; did you mean 'tier'?")
    assert "required field is missing" not in message and "more problem" not in message


def test_a_redis_url_without_its_scheme_is_named(pool_dict: dict[str, Any]) -> None:
    pool_dict["executor"] = {"state": "redis", "redis_url": "127.0.0.1:6379"}
    error = _err(pool_dict)
    assert "executor.redis_url" in error and "redis://" in error and "\n" not in error


@pytest.mark.parametrize(
    ("section", "typo", "meant"),
    [("gateway", {"auht": "keys"}, "gateway.auht: unknown field; did you mean 'auth'?"),
     ("executor", {"stat": "redis"}, "executor.stat: unknown field; did you mean 'state'?"),
     ("executor", {"breaker": {"cooldwon_s": 3}},
      "executor.breaker.cooldwon_s: unknown field; did you mean 'cooldown_s'?")],
)  # fmt: skip
def test_a_typo_of_an_optional_field_gets_the_close_match(
    pool_dict: dict[str, Any], section: str, typo: dict[str, Any], meant: str
) -> None:
    pool_dict[section] = typo
    assert _err(pool_dict).endswith(meant)


def test_a_typo_in_a_policy_gets_the_close_match(pool_dict: dict[str, Any]) -> None:
    pool_dict["policies"]["r"] = {"kind": "rules", "rules": [], "default": "efficient",
                                  "within_teir": "cheapest"}  # fmt: skip
    assert _err(pool_dict).endswith(
        "policies.r.within_teir: unknown field; did you mean 'within_tier'?"
    )


def test_a_typo_under_a_key_named_like_a_field_gets_the_close_match(
    pool_dict: dict[str, Any],
) -> None:
    pool_dict["models"]["price"] = {**pool_dict["models"]["opus"], "contex_window": 5}
    assert _err(pool_dict).endswith(
        "models.price.contex_window: unknown field; did you mean 'context_window'?"
    )


_POOL = (
    "providers: {up: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
    "models: {small: {provider: up, id: s, tier: efficient, price: {input: 1, output: 2}}}\n"
)


def test_relative_paths_in_the_file_are_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "turnout.yaml").write_text(
        _POOL + "storage: data/traces.db\ngateway: {spill: spill/s.jsonl}\n"
    )
    monkeypatch.chdir(tmp_path)
    s = load_settings(Path("conf/turnout.yaml"))
    assert s.storage is not None and Path(s.storage) == Path("conf/data/traces.db")
    assert Path(s.gateway["spill"]) == Path("conf/spill/s.jsonl")
    (conf / "turnout.yaml").write_text(_POOL + "storage: sqlite:///rel.db\n")
    assert Path(str(load_settings(conf / "turnout.yaml").storage)) == conf / "rel.db"


@pytest.mark.parametrize(
    "storage",
    ["/abs/traces.db", "postgresql://u@h/db", "sqlite:///:memory:"],
)
def test_absolute_paths_and_urls_are_kept(tmp_path: Path, storage: str) -> None:
    (tmp_path / "turnout.yaml").write_text(
        _POOL + f"storage: '{storage}'\ngateway: {{spill: none}}\n"
    )
    s = load_settings(tmp_path / "turnout.yaml")
    assert s.storage == storage and s.gateway["spill"] == "none"


def test_a_bad_storage_names_the_file_and_field_without_the_password(tmp_path: Path) -> None:
    f = tmp_path / "turnout.yaml"
    f.write_text(_POOL + "storage: 'host=db password=S3CRET'\n")
    with pytest.raises(ConfigError, match=r"turnout\.yaml: storage: the trace store looks") as info:
        load_settings(f)
    assert "S3CRET" not in str(info.value)


def test_a_model_can_name_the_field_its_token_cap_goes_under(pool_dict: dict[str, Any]) -> None:
    pool_dict["models"]["opus"]["max_tokens_param"] = "max_completion_tokens"
    s = settings_from_dict(pool_dict)
    assert s.models["opus"].max_tokens_param == "max_completion_tokens"
    assert s.models["haiku"].max_tokens_param is None  # the request's own name
    pool_dict["models"]["opus"]["max_tokens_param"] = "max_output_tokens"
    assert "models.opus.max_tokens_param" in _err(pool_dict)
