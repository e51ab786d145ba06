"""``turnout learn``: train a router from outcomes; ``learn export``, ``eval``, ``score``.

Thin over :mod:`turnout.learn`. Training needs the ``learn`` extra
(scikit-learn); scoring and evaluating a router file need numpy and the MiniLM
model only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from turnout.errors import ConfigError
from turnout.learn.features import EMBEDDING, STATIC

F = TypeVar("F", bound=Callable[..., Any])
STORE_HELP = "Trace store: a SQLite path or postgresql:// URL [default: .turnout/traces.db]."


def _models(value: str | None) -> list[str] | None:
    return [m.strip() for m in value.split(",") if m.strip()] if value else None


def _target(value: str | None) -> dict[str, float] | None:
    if not value:
        return None
    name, sep, raw = value.partition("=")
    try:
        number = float(raw)
    except ValueError:
        number = -1.0
    if not sep or name not in ("quality", "strong_share") or not 0 <= number <= 1:
        raise ConfigError(f"--target {value!r}: expected quality=0.95 or strong_share=0.3")
    return {name: number}


def _outcomes(
    outcomes_path: Path | None,
    bench_id: str | None,
    since: str | None,
    workflow: str | None,
    store_url: str | None,
) -> list[Any]:
    from turnout.learn.outcomes import export_outcomes, read_outcomes

    given = sum(x is not None for x in (outcomes_path, bench_id, since))
    if given != 1:
        raise ConfigError("give one of --outcomes FILE, --bench ID or --since DATE")
    if outcomes_path is not None:
        return read_outcomes(outcomes_path)
    from turnout.cli.flag import existing_store
    from turnout.cli.traces import opened_store
    from turnout.cli.when import parse_since

    start = parse_since(since) if since else None
    existing_store(store_url)
    with opened_store(store_url) as store:
        found = list(export_outcomes(store, bench_id=bench_id, since=start, workflow=workflow))
    if not found:
        where = f"bench {bench_id}" if bench_id else f"since {since}"
        raise ConfigError(f"no checked steps recorded for {where}: nothing to learn from")
    return found


def _pool_prices(config_path: Path | None) -> dict[str, float] | None:
    if config_path is None:
        return None
    from turnout.config.loader import load_settings

    settings = load_settings(config_path)
    return {n: float(m.price.input + m.price.output) for n, m in settings.models.items()}


_source = [
    click.option("--outcomes", "outcomes_path", type=click.Path(dir_okay=False, path_type=Path),
                 help="An outcomes JSONL file."),
    click.option("--bench", "bench_id", metavar="ID", help="Learn from a recorded bench."),
    click.option("--since", metavar="DATE", help="Learn from runs since an ISO date or age (7d)."),
    click.option("--workflow", "-w", metavar="NAME", help="With --since: only this workflow."),
    click.option("--store", "store_url", metavar="URL", envvar="TURNOUT_STORE", help=STORE_HELP),
]  # fmt: skip


_EMBEDDINGS = {"static": STATIC, "contextual": EMBEDDING, "none": None}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _with(options: Sequence[Any]) -> Callable[[F], F]:
    def wrap(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


@click.group("learn", invoke_without_command=True)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="turnout.yaml: models must be in its pool, ordered by price.",
)
@_with(_source)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the router file (JSON).",
)
@click.option(
    "--cv", type=click.IntRange(min=2), default=5, show_default=True, help="Cross-validation folds."
)
@click.option(
    "--models",
    "models",
    metavar="CHEAP,...,STRONG",
    help="The models, cheapest first [default: by price or cost_usd].",
)
@click.option(
    "--target",
    metavar="quality=0.95|strong_share=0.3",
    help="Calibrate the router's threshold for this target.",
)
@click.option("--threshold", type=click.FloatRange(-1, 1), help="Or set the threshold.")
@click.option(
    "--embedding",
    type=click.Choice(["static", "contextual", "none"]),
    default="static",
    show_default=True,
    help="MiniLM's word-piece vectors averaged (about 0.1-1 ms a prompt), its contextual "
    "sentence embedding (milliseconds), or none.",
)
@click.option(
    "--embed-tokens",
    type=click.IntRange(8, 512),
    default=256,
    show_default=True,
    help="Tokens of the prompt the embedding reads.",
)
@click.pass_context
def learn_group(
    ctx: click.Context,
    config_path: Path | None,
    outcomes_path: Path | None,
    bench_id: str | None,
    since: str | None,
    workflow: str | None,
    store_url: str | None,
    out_path: Path | None,
    cv: int,
    models: str | None,
    target: str | None,
    threshold: float | None,
    embedding: str,
    embed_tokens: int,
) -> None:
    """Train a router from outcomes: per model, the probability its answer passes.

    Subcommands: export (outcomes from the trace store), eval (the cost-quality
    curve on held-out outcomes), score (p_pass and the decision per prompt)."""
    if ctx.invoked_subcommand is not None:
        return
    from turnout import __version__
    from turnout.learn.router_file import save_router
    from turnout.learn.train import order_models, train

    if out_path is None:
        raise ConfigError("learn needs --out ROUTER (the router file to write)")
    if target and threshold is not None:
        raise ConfigError("give --target or --threshold, not both")
    outcomes = _outcomes(outcomes_path, bench_id, since, workflow, store_url)
    prices = _pool_prices(config_path)
    names = _models(models) or order_models(outcomes, prices)
    if prices is not None:
        unknown = [m for m in names if m not in prices]
        if unknown:
            raise ConfigError(f"model {unknown[0]!r} is not in the pool", file=str(config_path))
    trained = train(
        outcomes, models=names, cv=cv, embed_tokens=embed_tokens, target=_target(target),
        threshold=threshold, version=__version__, embedding=_EMBEDDINGS[embedding],
    )  # fmt: skip
    save_router(trained.router, out_path)
    cvs = trained.router.meta["cv"]
    fmt = _fmt
    click.echo(
        f"router {out_path}: {', '.join(names)} from {len(outcomes)} outcomes "
        f"({trained.router.meta['n_prompts']} prompts) in {trained.seconds:.1f} s; "
        f"C={trained.c}; {cv}-fold CV: APGR {fmt(cvs['apgr'])}, CPT(50%) {fmt(cvs['cpt50'])}, "
        f"CPT(80%) {fmt(cvs['cpt80'])}; threshold {trained.router.threshold:.3f}"
    )


@learn_group.command("export")
@click.option("--bench", "bench_id", metavar="ID", help="Outcomes of a recorded bench.")
@click.option("--since", metavar="DATE", help="Outcomes of runs since an ISO date or age (7d).")
@click.option("--workflow", "-w", metavar="NAME", help="Only this workflow.")
@click.option("--store", "store_url", metavar="URL", envvar="TURNOUT_STORE", help=STORE_HELP)
@click.option(
    "-o",
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSONL file to write.",
)
def export_cmd(
    bench_id: str | None, since: str | None, workflow: str | None, store_url: str | None,
    out_path: Path,
) -> None:  # fmt: skip
    """Write outcomes (every attempt of a checked step) from the trace store as JSONL."""
    from turnout.learn.outcomes import write_outcomes

    if (bench_id is None) == (since is None):
        raise ConfigError("export needs one of --bench ID or --since DATE")
    n = write_outcomes(_outcomes(None, bench_id, since, workflow, store_url), out_path)
    click.echo(f"{n} outcomes -> {out_path}")


@learn_group.command("eval")
@click.option(
    "--router", "router_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--outcomes",
    "outcomes_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Held-out outcomes (JSONL).",
)
@click.option("--models", metavar="CHEAP,STRONG", help="The pair [default: the router's ends].")
@click.option("--threshold", type=float, help="Threshold for the cost line [default: router's].")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the curve (with the random diagonal) to this HTML file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_cmd(
    router_path: Path, outcomes_path: Path, models: str | None, threshold: float | None,
    html_path: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """The cost-quality curve of a router on held-out outcomes: pass rates, APGR,
    CPT(50%), CPT(80%), cost per passed answer."""
    from turnout.learn.outcomes import read_outcomes
    from turnout.learn.router_file import load_router
    from turnout.learn.scoring import evaluate_router

    router = load_router(router_path)
    pair = _models(models)
    if pair is not None and len(pair) != 2:
        raise ConfigError("--models takes two models: CHEAP,STRONG")
    ev = evaluate_router(
        router, read_outcomes(outcomes_path), cheap=pair[0] if pair else None,
        strong=pair[1] if pair else None, threshold=threshold,
    )  # fmt: skip
    if html_path is not None:
        from turnout.learn.curve_html import curve_html

        html_path.write_text(curve_html(ev, f"{router_path.name} on {outcomes_path.name}"))
    if as_json:
        click.echo(json.dumps(ev.as_json(), indent=2))
        return
    fmt, pct = _fmt, _pct
    click.echo(f"{ev.n} prompts answered by both {ev.cheap} (cheap) and {ev.strong} (strong)")
    click.echo(f"pass rate: {ev.cheap} {pct(ev.cheap_rate)}, {ev.strong} {pct(ev.strong_rate)}, "
               f"oracle {pct(ev.oracle_rate)}")  # fmt: skip
    click.echo(f"APGR {fmt(ev.apgr)} (random 0.500, oracle {fmt(ev.oracle_apgr)})")
    click.echo(f"CPT(50%) {pct(ev.cpt50)} of calls to {ev.strong}; CPT(80%) {pct(ev.cpt80)}")
    cost = "n/a (no cost_usd)" if ev.cost_per_pass is None else f"${ev.cost_per_pass:.6f}"
    click.echo(f"at threshold {ev.threshold:.3f}: {pct(ev.strong_share)} to {ev.strong}, "
               f"pass rate {pct(ev.quality)}, cost per passed answer {cost}")  # fmt: skip
    if html_path is not None:
        click.echo(f"curve -> {html_path}")


@learn_group.command("score")
@click.option(
    "--router", "router_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--prompts",
    "prompts_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL: id, prompt or messages (step, workflow, annotation, tags optional).",
)
@click.option("--threshold", type=float, help="Decide with this threshold [default: router's].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def score_cmd(
    router_path: Path, prompts_path: Path, threshold: float | None, as_json: bool
) -> None:
    """p_pass per model and the decision, for each prompt of a file."""
    from turnout.learn.features import Item
    from turnout.learn.outcomes import parse_outcome
    from turnout.learn.router_file import load_router
    from turnout.learn.scoring import decisions, p_pass

    router = load_router(router_path)
    ids: list[str] = []
    items: list[Item] = []
    try:
        lines = prompts_path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read prompts ({exc})", file=str(prompts_path)) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            outcome = parse_outcome({"model": "-", "passed": False, **raw})
        except ValueError as exc:
            raise ConfigError(str(exc), file=str(prompts_path), field=f"line {n}") from None
        ids.append(str(raw.get("id", n)))
        items.append(Item.of_outcome(outcome))
    p = p_pass(router, items)
    chosen = decisions(router, p, threshold)
    for i, id_ in enumerate(ids):
        probs = {m: round(float(p[i, j]), 4) for j, m in enumerate(router.models)}
        if as_json:
            sys.stdout.write(json.dumps({"id": id_, "p_pass": probs, "model": chosen[i]}) + "\n")
        else:
            shown = ", ".join(f"{m} {v:.2f}" for m, v in probs.items())
            click.echo(f"{id_}: {shown} -> {chosen[i]}")
