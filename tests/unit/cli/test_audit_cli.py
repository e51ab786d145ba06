"""`turnout audit` through the real entry point: a store that does not exist is named,
not created."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.cli.main import main


def test_a_missing_store_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    code = main(["audit", "--store", str(missing)])
    err = capsys.readouterr().err
    assert code == 2 and f"no trace store at {missing}" in err
    assert len(err.strip().splitlines()) == 1 and not missing.exists()
