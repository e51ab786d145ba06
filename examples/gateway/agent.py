"""A small multi-step agent driven through `turnout serve` with the official openai SDK.

Each step is one chat completion; the per-step headers tell the gateway's policy what
the step is (x-turnout-step, x-turnout-annotation), and the session header groups the
steps for `turnout report weekly` (cost per session). The agent itself knows nothing
about models: it asks for `model="rules"` every time and reads back which pool model
answered and what it cost.

    # against a gateway that is already running:
    python examples/gateway/agent.py --base-url http://127.0.0.1:8000/v1

    # or let the script start `turnout serve -c CONFIG` on a free port and stop it after:
    python examples/gateway/agent.py --config examples/gateway/turnout.yaml --store /tmp/agent.db

Afterwards it prints `turnout report weekly` for the trace store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from openai import OpenAI

TASK = "Add a --dry-run flag to the export command"

# (step, annotation, instruction): the policy routes on the annotation
STEPS = [
    ("plan", "scope=multi-file; domain=feature; ambiguity=high", "Plan the change in 3 bullets."),
    ("implement", "scope=single-file; domain=feature; ambiguity=low", "Write the code change."),
    ("review", "scope=single-file; domain=security; ambiguity=medium", "Review it for risks."),
    ("docs", "scope=single-file; domain=docs; ambiguity=low", "Write one README sentence."),
]


def run_agent(base_url: str, session: str, max_tokens: int) -> Decimal:
    client = OpenAI(base_url=base_url, api_key="unused-locally", max_retries=0)
    context = f"Task: {TASK}"
    total = Decimal(0)
    for step, annotation, instruction in STEPS:
        raw = client.chat.completions.with_raw_response.create(
            model="rules",
            messages=[
                {"role": "system", "content": "You are a terse senior engineer."},
                {"role": "user", "content": f"{context}\n\n{instruction}"},
            ],
            max_tokens=max_tokens,
            extra_headers={
                "x-turnout-workflow": "feature-agent",
                "x-turnout-step": step,
                "x-turnout-session": session,
                "x-turnout-annotation": annotation,
            },
        )
        answer = raw.parse()
        text = answer.choices[0].message.content or ""
        cost = Decimal(raw.headers.get("x-turnout-cost-usd", "0"))
        total += cost
        print(f"{step:<10} {answer.model:<8} ${cost:<12} {raw.headers.get('x-turnout-reason', '')}")
        context += f"\n\n[{step}] {text.strip()[:400]}"
    print(f"session {session}: {len(STEPS)} steps, ${total}")
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def turnout_command() -> str:
    here = Path(sys.executable).parent / "turnout"
    return str(here) if here.exists() else (shutil.which("turnout") or "turnout")


@contextmanager
def gateway(config: str, store: str) -> Iterator[str]:
    """`turnout serve` on a free port until the block ends (SIGTERM: drain, flush traces)."""
    port = free_port()
    cmd = [turnout_command(), "serve", "-c", config, "--port", str(port), "--store", store]
    proc = subprocess.Popen(cmd, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"turnout serve exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("turnout serve did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--config", help="start `turnout serve -c CONFIG` for the run")
    parser.add_argument("--store", default=".turnout/traces.db", help="the gateway's trace store")
    parser.add_argument("--session", default=None, help="session id (default: a new one)")
    parser.add_argument("--max-tokens", type=int, default=120)
    args = parser.parse_args()
    session = args.session or f"agent-{uuid.uuid4().hex[:8]}"
    if args.config:
        with gateway(args.config, args.store) as base_url:
            run_agent(base_url, session, args.max_tokens)
    else:
        run_agent(args.base_url, session, args.max_tokens)
    print()
    report = [turnout_command(), "report", "weekly", "--store", args.store]
    sys.exit(subprocess.run(report, check=False).returncode)


if __name__ == "__main__":
    main()
