"""``turnout chat``: one request through the façade, the quickest way to try a policy.

Prints the answer, or what the model said in refusing (as it arrives with ``--stream``),
and one line: model, attempts, latency, tokens, cost and the policy's reason. Exit 0 on
an answer, 1 when every attempt failed (one line naming each attempt), 2 on bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from turnout.cli.common import config_option, parse_tags
from turnout.cli.session import run_async
from turnout.cli.traces import STORE_HELP
from turnout.config.loader import load_settings
from turnout.errors import ConfigError, TurnoutError
from turnout.facade import Answer, Turnout
from turnout.reports.fmt import usd
from turnout.types import Message, TextDelta, WireExtra
from turnout.workflows.keys import policy_reach, require_keys


@click.command("chat")
@config_option
@click.option("--policy", "-p", "policy_name", help="A policy from turnout.yaml.")
@click.option("--model", "-m", "model", help="Exactly this pool model (no policy).")
@click.option("--system", "system", metavar="TEXT", help="A system prompt.")
@click.option("--stream", "stream", is_flag=True, help="Print the answer as it arrives.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A tag for policies (repeatable); CI=true adds context=ci unless a context tag is given.",
)
@click.option("--step", "step", metavar="ID", help="The step name the policy sees.")
@click.option("--max-tokens", "max_tokens", type=click.IntRange(min=1), help="Answer length cap.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON on stdout.")
@click.option("--store", "store_url", envvar="TURNOUT_STORE", help=STORE_HELP)
@click.option("--no-trace", is_flag=True, help="Do not record the request.")
@click.argument("prompt", required=False)
def chat_cmd(
    config_path: Path,
    policy_name: str | None,
    model: str | None,
    system: str | None,
    stream: bool,
    tags: tuple[str, ...],
    step: str | None,
    max_tokens: int | None,
    as_json: bool,
    store_url: str | None,
    no_trace: bool,
    prompt: str | None,
) -> None:
    """Send PROMPT (or standard input) through a policy and show what happened."""
    if policy_name and model:
        raise click.UsageError("--policy and --model are exclusive")
    if prompt is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a PROMPT, or pipe one on standard input")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise click.UsageError("the prompt is empty")
    settings = load_settings(config_path)
    if policy_name:
        settings.policy(policy_name)  # a ConfigError naming it if unknown
    if model and model not in settings.models:
        raise ConfigError(f"--model: no pool model {model!r} in {config_path}")
    require_keys(settings, [model] if model else policy_reach(settings, policy_name))
    tag_map = parse_tags(tags)
    messages = [Message.system(system)] if system else []
    messages.append(Message.user(prompt))
    options: dict[str, Any] = {"tags": tag_map, "step": step, "max_tokens": max_tokens}
    if model:
        options["model"] = model
    else:
        options["policy"] = policy_name
    answer = run_async(_ask(settings, store_url, no_trace, messages, options, stream, as_json))
    if as_json:
        sys.stdout.write(json.dumps(answer_json(answer), indent=2) + "\n")
    else:
        if not stream and answer.ok:
            click.echo(answer.text or refusal_of(answer) or "")
        click.echo(summary_line(answer), err=True)
    if not answer.ok:
        if not as_json:
            click.echo(f"error: {answer.error}", err=True)
        raise SystemExit(1)


async def _ask(
    settings: Any,
    store_url: str | None,
    no_trace: bool,
    messages: list[Message],
    options: dict[str, Any],
    stream: bool,
    as_json: bool,
) -> Answer:
    async with Turnout(settings, store=store_url, trace=not no_trace) as t:
        if not stream:
            return await t.chat(messages, **options)
        s = t.stream(messages, **options)
        try:
            async for event in s:
                if isinstance(event, TextDelta) and not as_json:
                    sys.stdout.write(event.text + (_refusal(event.extra) or ""))
                    sys.stdout.flush()
        except TurnoutError:
            pass  # in the answer
        if not as_json:
            sys.stdout.write("\n")
        assert s.answer is not None
        return s.answer


def refusal_of(a: Answer) -> str | None:
    """What the model said in refusing (OpenAI's ``message.refusal``), if it refused."""
    return _refusal(a.response.extra) if a.response is not None else None


def _refusal(extra: WireExtra) -> str | None:
    """The ``refusal`` an answer or a streamed chunk carried, if any."""
    refusal = extra.message.get("refusal")
    return refusal if isinstance(refusal, str) else None


def summary_line(a: Answer) -> str:
    u = a.usage
    n = len(a.attempts)
    return (
        f"{a.model or '-'} · {n} attempt{'s' if n != 1 else ''} · {a.latency_s:.2f}s · "
        f"{u.input_tokens} in / {u.output_tokens} out · {usd(a.cost)} · {a.reason}"
    )


def answer_json(a: Answer) -> Mapping[str, Any]:
    u = a.usage
    return {
        "answer": a.text if a.ok else None,
        "refusal": refusal_of(a) if a.ok else None,
        "model": a.model,
        "policy": a.policy,
        "reason": a.reason,
        "attempts": [
            {
                "model": x.model,
                "status": x.status,
                "error": x.error,
                "latency_s": round(x.latency_s, 6),
                "input_tokens": x.input_tokens,
                "output_tokens": x.output_tokens,
                "cost_usd": str(x.cost_usd),
            }
            for x in a.attempts
        ],
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cached_input_tokens": u.cached_input_tokens,
            "estimated": u.estimated,
        },
        "cost_usd": str(a.cost),
        "latency_s": round(a.latency_s, 6),
        "run_id": a.run_id,
        "error": str(a.error) if a.error else None,
    }
