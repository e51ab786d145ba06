"""Load time and speed of the embedded local models on this machine.

For each catalogue model, through the real :class:`LocalProvider` (so the figures
include turnout's own overhead):

* ``ensure``: locating the package files and verifying the GGUF (cached: a size
  check and the sidecar; on the very first run Qwen is assembled, about 470 MB);
* ``load``: ensure plus loading the GGUF into llama.cpp (what the first request pays);
* per run, a fixed prompt at temperature 0 with the prompt cache off: time to first
  token, prompt tokens/s (input tokens / ttft) and generation tokens/s
  ((output tokens - 1) / (latency - ttft)); medians over ``--runs``.

The load average is printed before and after: the machine is shared, and llama.cpp
slows down sharply when other processes use the same cores.

    .venv/bin/python benchmarks/local_models.py [--runs 3] [--max-tokens 64] [--threads N]
        [--models smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from turnout.providers.local import LocalOptions, LocalProvider, available_cores
from turnout.providers.local_models import CATALOGUE, ensure_model, resolve
from turnout.types import ChatRequest, Message

PROMPT = (
    "Write a short Python function that checks whether a string is a palindrome, "
    "ignoring case and punctuation, and explain it in two sentences."
)


async def bench_model(
    model_id: str, runs: int, max_tokens: int, options: LocalOptions
) -> dict[str, Any]:
    model = resolve(model_id)
    t0 = time.perf_counter()
    ensure_model(model, options.cache_dir)
    ensure_s = time.perf_counter() - t0

    provider = LocalProvider({model.id: (model, options.context_size)}, options=options)
    try:
        load_s = (await provider.warm_up())[model.id]
        request = ChatRequest(
            (Message.system("You are a helpful coding assistant."), Message.user(PROMPT)),
            model=model.id,
            max_tokens=max_tokens,
            temperature=0,
            extra={"cache_prompt": False},
        )
        rows = []
        for _ in range(runs):
            response = await provider.complete(request)
            ttft = response.ttft_s or response.latency_s
            decode = max(response.latency_s - ttft, 1e-9)
            rows.append(
                {
                    "latency_s": response.latency_s,
                    "ttft_s": ttft,
                    "input_tokens": response.usage.input_tokens,
                    "output_tokens": response.usage.output_tokens,
                    "prompt_tps": response.usage.input_tokens / ttft,
                    "gen_tps": max(response.usage.output_tokens - 1, 0) / decode,
                }
            )
    finally:
        await provider.aclose()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "model": model.id,
        "ensure_s": ensure_s,
        "load_s": load_s,
        "runs": runs,
        "input_tokens": rows[0]["input_tokens"],
        "output_tokens": median("output_tokens"),
        "ttft_s": median("ttft_s"),
        "latency_s": median("latency_s"),
        "prompt_tps": median("prompt_tps"),
        "gen_tps": median("gen_tps"),
        "gen_tps_runs": [round(r["gen_tps"], 1) for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(CATALOGUE))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--context-size", type=int, default=2048)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)

    options = LocalOptions(context_size=args.context_size, threads=args.threads)
    load_before = os.getloadavg()
    print(
        f"cores={available_cores()} threads={options.thread_count} "
        f"loadavg(1m) before={load_before[0]:.2f}",
        flush=True,
    )
    results = []
    for model_id in [m.strip() for m in args.models.split(",") if m.strip()]:
        result = asyncio.run(bench_model(model_id, args.runs, args.max_tokens, options))
        results.append(result)
        print(
            f"{result['model']:<30} ensure {result['ensure_s']:6.3f}s  "
            f"load {result['load_s']:6.2f}s  "
            f"ttft {result['ttft_s']:5.2f}s ({result['input_tokens']} prompt tok, "
            f"{result['prompt_tps']:6.1f} tok/s)  generate {result['gen_tps']:5.1f} tok/s "
            f"(runs {result['gen_tps_runs']}, {result['output_tokens']:.0f} tok)",
            flush=True,
        )
    print(f"loadavg(1m) after={os.getloadavg()[0]:.2f}")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump({"cores": available_cores(), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
