"""all-MiniLM-L6-v2's encoder in numpy: the reference engine, and the fallback
where onnxruntime is not installed.

It runs the same computation as sentence-transformers does for that model (BERT,
6 layers, hidden 384, 12 heads, exact erf GELU, post-layer-norm, float32) and
matches it to about 1e-7. onnxruntime (:mod:`turnout.execution.cache.minilm_onnx`)
runs the same graph about twice as fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from turnout.execution.cache.minilm_weights import Weights

    F32 = NDArray[np.float32]


class NumpyEncoder:
    """Runs the encoder for one sequence of token ids at a time.

    Limits OpenBLAS to ``threads`` threads (default 1) for the whole process,
    which makes small look-ups several times faster on a busy machine; pass
    ``threads=None`` to leave the process's BLAS settings alone.
    """

    name = "numpy"

    def __init__(self, weights: Weights, *, threads: int | None = 1) -> None:
        self._weights = weights
        if threads is not None:
            limit_blas_threads(threads)

    def encode(self, ids: list[int]) -> F32:
        """The mean of the last layer's token vectors, shape ``(hidden,)``."""
        return _encode_one(self._weights, ids)


def limit_blas_threads(n: int) -> None:
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


def _encode_one(wt: Weights, ids: list[int]) -> F32:
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
