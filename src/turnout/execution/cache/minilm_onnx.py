"""all-MiniLM-L6-v2's encoder run by onnxruntime (the default engine).

The ONNX graph is built in memory from the weights the model package ships (no
exported file, no torch, nothing written to disk): the same BERT forward pass as
the numpy reference (:mod:`turnout.execution.cache.minilm_numpy`), in float32, so
the embeddings agree to float rounding. onnxruntime then fuses and pre-packs the
projections, and its kernels run a short question in a few milliseconds on one
core, where numpy's BLAS calls, made one small matrix at a time, take about
twice as long.

One sequence per run, so there is no padding and no attention mask. The graph's
input is the token ids, shape ``(n,)``; its output the mean of the last layer's
token vectors, shape ``(hidden,)`` (not yet normalized).
"""

from __future__ import annotations

import importlib.util
import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from turnout.execution.cache.minilm_weights import Weights

    F32 = NDArray[np.float32]

OPSET = 20  # the first with Gelu; onnxruntime >= 1.17 runs it
IR_VERSION = 9


def onnx_available() -> bool:
    """True when onnxruntime and onnx (to build the graph) are both installed."""
    return all(importlib.util.find_spec(n) is not None for n in ("onnxruntime", "onnx"))


class OnnxEncoder:
    """Runs the encoder for one sequence of token ids at a time.

    ``threads`` is onnxruntime's intra-op thread count (1 by default: a look-up's
    matrices are small, and a gateway has other requests to serve on the other
    cores). ``run`` is thread-safe (onnxruntime sessions are).
    """

    name = "onnxruntime"

    def __init__(self, weights: Weights, *, threads: int | None = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: nothing on stderr otherwise
        model, weights_by_name = build_graph(weights)
        names = list(weights_by_name)
        options.add_external_initializers(
            names, [ort.OrtValue.ortvalue_from_numpy(weights_by_name[n]) for n in names]
        )
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        # onnxruntime copies them (1.31); older releases may not: they live as long as this
        self._weights = weights_by_name

    def encode(self, ids: list[int]) -> F32:
        """The mean of the last layer's token vectors, shape ``(hidden,)``."""
        import numpy as np

        feed = {"input_ids": np.asarray(ids, dtype=np.int64)}
        out: F32 = self._session.run(None, feed)[0]
        return out


EXTERNAL_BYTES = 4096  # tensors this big are handed to onnxruntime directly


def build_graph(wt: Weights) -> tuple[Any, dict[str, F32]]:
    """The BERT encoder with mean pooling as an ONNX ``ModelProto``, and its large
    tensors by name.

    Activations are ``(tokens, hidden)``; every projection is a ``Gemm`` with the
    weight in its stored ``(out, in)`` layout (``transB=1``) and the bias fused.
    Tensors of ``EXTERNAL_BYTES`` or more are declared as external data and given
    to the session as ``OrtValue`` s (``add_external_initializers``): copying 90 MB
    of weights into a protobuf and serializing it would take most of a second,
    this takes a few milliseconds.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    names = (f"t{i}" for i in itertools.count())
    external: dict[str, F32] = {}

    def const(name: str, arr: Any) -> str:
        arr = np.ascontiguousarray(arr)
        if arr.nbytes < EXTERNAL_BYTES:
            inits.append(numpy_helper.from_array(arr, name))
            return name
        assert arr.dtype == np.float32, f"{name}: large tensors are float32 weights"
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=arr.shape)
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="turnout-memory")
        inits.append(tensor)
        external[name] = arr
        return name

    def node(op: str, *inputs: str, outputs: int = 1, **attrs: Any) -> Any:
        outs = [next(names) for _ in range(outputs)]
        nodes.append(helper.make_node(op, list(inputs), outs, **attrs))
        return outs[0] if outputs == 1 else outs

    def flat(col: F32) -> F32:
        return col.reshape(-1)

    hidden = wt.hidden
    head_dim = hidden // wt.heads

    def layer_norm(x: str, g: str, b: str) -> str:
        out: str = node("LayerNormalization", x, g, b, axis=-1, epsilon=wt.eps)
        return out

    def dense(x: str, prefix: str, w: F32, b: F32) -> str:
        out: str = node("Gemm", x, const(prefix + ".w", w), const(prefix + ".b", flat(b)), transB=1)
        return out

    # embeddings: word + position (sliced to the sequence's length) + token type 0
    zero = const("zero", np.array([0], dtype=np.int64))
    length = node("Shape", "input_ids")
    positions = node("Slice", const("position", wt.position + wt.token_type[0]), zero, length)
    x = node("Add", node("Gather", const("word", wt.word), "input_ids"), positions)
    x = layer_norm(x, const("emb.ln.g", flat(wt.ln_g)), const("emb.ln.b", flat(wt.ln_b)))

    heads_shape = const("heads_shape", np.array([0, wt.heads, head_dim], dtype=np.int64))
    hidden_shape = const("hidden_shape", np.array([0, hidden], dtype=np.int64))
    split = const("split", np.array([hidden] * 3, dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    for i, layer in enumerate(wt.layers):
        p = f"l{i}"
        qkv = dense(x, p + ".qkv", layer.qkv_w, layer.qkv_b)
        q, k, v = (
            node("Reshape", t, heads_shape) for t in node("Split", qkv, split, axis=1, outputs=3)
        )
        q = node("Transpose", q, perm=[1, 0, 2])  # (heads, tokens, head_dim)
        k = node("Transpose", k, perm=[1, 2, 0])  # (heads, head_dim, tokens)
        v = node("Transpose", v, perm=[1, 0, 2])
        probs = node("Softmax", node("Mul", node("MatMul", q, k), scale), axis=-1)
        ctx = node("Transpose", node("MatMul", probs, v), perm=[1, 0, 2])
        attn = dense(node("Reshape", ctx, hidden_shape), p + ".out", layer.out_w, layer.out_b)
        x = layer_norm(
            node("Add", attn, x),
            const(p + ".ln1.g", flat(layer.ln1_g)),
            const(p + ".ln1.b", flat(layer.ln1_b)),
        )
        up = node("Gelu", dense(x, p + ".up", layer.up_w, layer.up_b))
        down = dense(up, p + ".down", layer.down_w, layer.down_b)
        x = layer_norm(
            node("Add", down, x),
            const(p + ".ln2.g", flat(layer.ln2_g)),
            const(p + ".ln2.b", flat(layer.ln2_b)),
        )
    nodes.append(helper.make_node("ReduceMean", [x, zero], ["embedding"], keepdims=0))

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model, external
