"""all-MiniLM-L6-v2's weights, read from the model package's safetensors file.

The weights are kept in PyTorch's ``(out, in)`` layout, with query, key and
value stacked into one projection, and are shared by both encoders (onnxruntime
and numpy), which each arrange them as they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from turnout.errors import ModelPackageMissing

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    F32 = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Layer:
    """One encoder layer. Matrices are ``(out, in)``; biases and layer-norm vectors
    are columns, shape ``(n, 1)``, to broadcast over ``(hidden, tokens)``."""

    qkv_w: F32  # (3 * hidden, hidden): query, key and value stacked
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
class Weights:
    word: F32  # (vocab, hidden)
    position: F32  # (max positions, hidden)
    token_type: F32  # (types, hidden)
    ln_g: F32
    ln_b: F32
    layers: tuple[Layer, ...]
    heads: int
    eps: float

    @property
    def hidden(self) -> int:
        return int(self.word.shape[1])


def load_weights(file: Path, config: dict[str, Any]) -> Weights:
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
        arr: F32 = w(name)[:, None]
        return arr

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        qkv = ("query", "key", "value")
        layers.append(
            Layer(
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
    return Weights(
        word=w("embeddings.word_embeddings.weight"),
        position=w("embeddings.position_embeddings.weight"),
        token_type=w("embeddings.token_type_embeddings.weight"),
        ln_g=col("embeddings.LayerNorm.weight"),
        ln_b=col("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        heads=int(config["num_attention_heads"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
    )
