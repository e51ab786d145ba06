"""`turnout serve` through the real entry point, for what it refuses before listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.cli.main import main

POOL = (
    "providers: {up: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
    "models: {small: {provider: up, id: s, tier: efficient, price: {input: 1, output: 2}}}\n"
    "policies: {cheap: {kind: static, model: small}}\n"
)


def test_auth_none_off_loopback_is_a_config_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "turnout.yaml"
    config.write_text(POOL + "gateway: {auth: none}\n")
    code = main(
        ["serve", "-c", str(config), "--host", "0.0.0.0", "--store", str(tmp_path / "t.db")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {config}: gateway.auth: auth: none is allowed")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "t.db").exists()


def test_help_says_how_it_stops_and_where_the_store_comes_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "SIGTERM" in text and "exits 0" in text
    assert "$TURNOUT_STORE, else storage: of the config (relative to it)" in text
