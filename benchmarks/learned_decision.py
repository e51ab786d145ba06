"""Decision latency of ``kind: learned``: a new prompt (embedding included) and a cached one.

Trains a small router on a planted outcome set (its weights do not change the
cost of a decision), then decides prompts of 200 to 2,000 characters, each new
to the policy (so it is embedded), and the same prompts again (their rows are
cached: a dictionary look-up and one dot product per model). The default
embedding is MiniLM's word-piece vectors averaged; ``--embedding contextual``
measures the six-layer sentence embedding instead (one thread, as the policy
uses). Targets (issue 12): p99 <= 10 ms with the
embedding, <= 100 µs cached.

    .venv/bin/python benchmarks/learned_decision.py [--n 300] [--embed-tokens 64]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from turnout.learn.datasets import planted_outcomes
from turnout.learn.features import EMBEDDING, STATIC
from turnout.learn.outcomes import parse_outcome
from turnout.learn.train import train
from turnout.policies.base import RequestContext
from turnout.policies.learned import LearnedPolicy
from turnout.types import Message

_WORDS = ("route", "model", "cheap", "strong", "prompt", "answer", "test", "deploy",
          "schema", "refactor", "the", "a", "of", "and", "explain", "why", "function", "data",
          "user")  # fmt: skip


def _prompt(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:chars]


def _stats(samples: list[float]) -> str:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return f"median {statistics.median(s) * 1e6:8.1f} µs  p99 {p99 * 1e6:8.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="prompts per length")
    parser.add_argument("--embed-tokens", type=int, default=256)
    parser.add_argument("--embedding", choices=("static", "contextual"), default="static")
    args = parser.parse_args()
    outcomes = [parse_outcome(x) for x in planted_outcomes(120, seed=1)]
    embedding = STATIC if args.embedding == "static" else EMBEDDING
    router = train(outcomes, models=["cheap", "strong"], cv=3, c_grid=(0.1,),
                   embed_tokens=args.embed_tokens, embedding=embedding).router  # fmt: skip
    policy = LearnedPolicy("learned", router, threshold=0.1)
    policy.decide(RequestContext(messages=(Message("user", "warm up"),)))
    rng = random.Random(0)
    for chars in (200, 1000, 2000):
        ctxs = [RequestContext(messages=(Message("user", f"{i} {_prompt(rng, chars - 6)}"),))
                for i in range(args.n)]  # fmt: skip
        cold, warm = [], []
        for ctx in ctxs:
            t0 = time.perf_counter()
            policy.decide(ctx)
            cold.append(time.perf_counter() - t0)
        for ctx in ctxs:
            t0 = time.perf_counter()
            policy.decide(ctx)
            warm.append(time.perf_counter() - t0)
        print(f"{chars:>5} chars  new prompt: {_stats(cold)}   cached: {_stats(warm)}")


if __name__ == "__main__":
    main()
