"""Make an outcome set: run every model of a pool on graded tasks, record pass/fail.

The tasks (``turnout.learn.datasets``: word problems, sentiment labels, email
extraction, small Python functions with tests) are made from a seed, so a set is
regenerated rather than stored. Each (task, model) becomes one outcome line
(``id``, ``prompt``, ``model``, ``passed``, ``cost_usd``); lines are flushed as
they are written, so a run that is stopped early keeps what it has.

    .venv/bin/python benchmarks/make_outcomes.py -c examples/csv_export/turnout.yaml \\
        --models smol,qwen -n 300 --seed 1 -o outcomes.jsonl

The two local models (llama.cpp on the CPU) take about 1-5 s a task on two cores.
Temperature 0 (greedy), so the same seed gives the same answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from turnout.config.loader import load_settings
from turnout.learn.datasets import KINDS, tasks
from turnout.providers.registry import build_provider
from turnout.types import ChatRequest, Message


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="examples/csv_export/turnout.yaml")
    parser.add_argument("--models", default="smol,qwen", help="pool models, cheapest first")
    parser.add_argument("-n", type=int, default=200, help="how many tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings(args.config)
    models = [settings.model(m) for m in args.models.split(",")]
    providers = {
        spec.name: build_provider(
            settings.providers[spec.provider],
            [m for m in models if m.provider == spec.provider],
        )
        for spec in models
    }
    todo = tasks(args.n, seed=args.seed, kinds=tuple(args.kinds.split(",")))
    began = time.perf_counter()
    passed = dict.fromkeys(providers, 0)
    with args.out.open("w", encoding="utf-8") as out:
        for n, task in enumerate(todo, 1):
            for spec in models:
                request = ChatRequest(
                    (Message("user", task.prompt),),
                    model=spec.id,
                    max_tokens=task.max_tokens,
                    temperature=0.0,
                )
                response = await providers[spec.name].complete(request)
                ok = task.grade(response.content or "")
                passed[spec.name] += ok
                line = {
                    "id": task.id,
                    "prompt": task.prompt,
                    "model": spec.name,
                    "passed": ok,
                    "cost_usd": float(spec.price.cost(response.usage)),
                }
                out.write(json.dumps(line) + "\n")
            out.flush()
            if n % 10 == 0:
                rate = ", ".join(f"{m} {passed[m] / n:.0%}" for m in passed)
                print(
                    f"{n}/{len(todo)} tasks, {time.perf_counter() - began:.0f} s: {rate}",
                    file=sys.stderr,
                    flush=True,
                )
    for provider in {id(p): p for p in providers.values()}.values():
        await provider.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
