"""Router files: plain JSON, round trip, a version they cannot read refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turnout.errors import ConfigError
from turnout.learn.features import FeatureSpec
from turnout.learn.router_file import FORMAT_VERSION, Router, load_router, save_router


def _router() -> Router:
    spec = FeatureSpec(embedding=None, categorical=(("step", ("plan", "verify")),))
    rng = np.random.default_rng(0)
    return Router(
        models=("smol", "qwen"),
        spec=spec,
        weights=rng.normal(size=(2, spec.width)),
        bias=np.array([0.1, -0.2]),
        threshold=0.12,
        target={"quality": 0.95},
        calibration_p=rng.random((5, 2)),
        calibration_passed=(rng.random((5, 2)) < 0.5).astype(float),
        meta={"turnout_version": "0.1.0", "n_prompts": 5, "cv": {"apgr": 0.7}},
    )


def test_round_trip(tmp_path: Path) -> None:
    r = _router()
    path = tmp_path / "r.json"
    save_router(r, path)
    back = load_router(path)
    assert back.models == r.models and back.spec == r.spec and back.threshold == 0.12
    assert back.target == {"quality": 0.95}
    row = np.random.default_rng(1).normal(size=r.spec.width)
    assert np.allclose(back.p_pass(row), r.p_pass(row), atol=1e-6)
    assert np.allclose(back.calibration_p, np.round(r.calibration_p, 4))  # type: ignore[arg-type]
    raw = json.loads(path.read_text())
    assert raw["format"] == "turnout-router" and raw["format_version"] == FORMAT_VERSION
    assert raw["turnout_version"] == "0.1.0" and raw["cv"] == {"apgr": 0.7}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=99),
         "router format version 99 cannot be read by this turnout (it reads version 1); "
         "retrain it with `turnout learn`"),
        (lambda d: d.update(format="pickle"), "not a turnout router file"),
        (lambda d: d.update(models=["smol"]), "a router needs at least two models"),
        (lambda d: d["heads"].pop("qwen"), "no head for model 'qwen'"),
        (lambda d: d["heads"]["qwen"].update(weights=[1.0]), "qwen: expected"),
        (lambda d: d["features"].update(text=["vibes"]), "unknown text signal 'vibes'"),
    ],
)  # fmt: skip
def test_a_file_it_cannot_read_is_one_line(tmp_path: Path, edit: object, message: str) -> None:
    path = tmp_path / "r.json"
    save_router(_router(), path)
    raw = json.loads(path.read_text())
    edit(raw)  # type: ignore[operator]
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as info:
        load_router(path)
    assert str(info.value) == f"{path}: {message}" or (
        str(info.value).startswith(f"{path}: ") and message in str(info.value)
    )
    assert "\n" not in str(info.value)


def test_not_json_or_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x80\x04\x95 a pickle")
    with pytest.raises(ConfigError, match=r"cannot read router file|not JSON"):
        load_router(bad)
    with pytest.raises(ConfigError, match="cannot read router file"):
        load_router(tmp_path / "none.json")
