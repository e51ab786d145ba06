"""MiniLM's token vectors, averaged: a prompt embedding in microseconds.

The contextual all-MiniLM-L6-v2 embedding (the semantic cache's encoder) runs six
transformer layers over every token: on one core that is several milliseconds for
a short prompt and tens of milliseconds for 64 tokens of a long one, over the
``learned`` policy's 10 ms budget. This reads the same model package's tokenizer
and input word vectors only (no transformer): the mean of the vectors of the
prompt's word pieces (the first ``max_tokens``), L2-normalised. It says what a
prompt is about (its subject, its kind of task) nearly as well for routing, at
about 0.1 ms for 2,000 characters (see ``benchmarks/learned_decision.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from turnout.execution.cache.embedding import DIM, _require_libraries, model_dir

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

    F32 = NDArray[np.float32]

_WORDS = "embeddings.word_embeddings.weight"


class StaticMiniLM:
    """Mean word-piece vectors of all-MiniLM-L6-v2 (384 floats, unit length)."""

    dim = DIM

    def __init__(self, max_tokens: int = 512) -> None:
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._vectors: F32 | None = None
        self._tokenizer: Tokenizer | None = None

    def load(self) -> None:
        with self._lock:
            if self._vectors is not None:
                return
            _require_libraries()
            from safetensors import safe_open
            from tokenizers import Tokenizer

            path = model_dir()
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_tokens)
            with safe_open(str(path / "model.safetensors"), framework="numpy") as f:
                vectors = f.get_tensor(_WORDS).astype("float32")
            self._tokenizer = tokenizer
            self._vectors = vectors  # last: embed() checks it without the lock

    def embed(self, texts: Sequence[str]) -> F32:
        import numpy as np

        if self._vectors is None:
            self.load()
        vectors, tokenizer = self._vectors, self._tokenizer
        assert vectors is not None and tokenizer is not None
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        # a word piece is rarely over 6 characters: cut long texts before tokenizing
        cut = [t[: self.max_tokens * 6] for t in texts]
        for i, encoding in enumerate(tokenizer.encode_batch(cut)):
            ids = encoding.ids[1:-1] or encoding.ids  # without [CLS] and [SEP]
            out[i] = vectors[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out
