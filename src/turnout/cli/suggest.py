"""``turnout suggest``: propose a ``per_step`` policy from a bench's evidence.

Thin over :func:`turnout.reports.suggest.suggest`. Prints a ``policies:`` YAML
snippet (the evidence as comments) to paste into turnout.yaml, or ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from turnout.bench.data import load_bench_data
from turnout.cli.common import CLIError
from turnout.cli.flag import existing_store
from turnout.cli.traces import STORE_HELP, opened_store
from turnout.config.loader import load_settings
from turnout.config.settings import Settings
from turnout.reports.suggest import Suggestion, suggest
from turnout.types import Tier

_TIER_RANK = {t.value: t.rank for t in Tier}


@click.command("suggest")
@click.argument("bench_id")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The turnout.yaml whose pool gives tiers and prices "
    "[default: the bench's own, else ./turnout.yaml if there is one].",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.05,
    show_default=True,
    help="How far below the best pass rate a cheaper model may be.",
)
@click.option(
    "--min-runs",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Runs of a step a model needs before its pass rate counts as evidence.",
)
@click.option("--name", default="suggested", show_default=True, help="The policy's name.")
@click.option("--store", "store_url", metavar="URL", envvar="TURNOUT_STORE", help=STORE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the snippet included).")
def suggest_cmd(
    bench_id: str,
    config_path: Path | None,
    tolerance: float,
    min_runs: int,
    name: str,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Propose a per_step policy from bench BENCH_ID (or a unique prefix): per step, the
    cheapest model whose pass rate is within the tolerance of the best."""
    settings = load_settings(config_path) if config_path is not None else None
    url = store_url or (settings.storage if settings else None)
    existing_store(url)
    with opened_store(url) as store:
        data = load_bench_data(store, bench_id)
    if settings is None:
        settings = _default_settings(data.bench.spec.get("config_path"))
    result = suggest(data, settings, tolerance=tolerance, min_runs=min_runs, name=name)
    if not result.steps:
        raise CLIError(f"bench {data.bench.bench_id} has no finished LLM step to learn from")
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    click.echo(result.snippet(), nl=False)
    click.echo(learned_hint(data.bench.bench_id, result), nl=False)
    if settings is not None:
        missing = sorted({s.model for s in result.steps} - set(settings.models))
        if missing:
            click.echo(
                f"warning: {', '.join(missing)} not in the pool of {settings.source}: "
                "the snippet will not load there",
                err=True,
            )


def learned_hint(bench_id: str, result: Suggestion) -> str:
    """Commented YAML: the ``learned`` policy this bench's outcomes could train, per prompt
    rather than per step (``turnout learn --bench``)."""
    ranked: dict[str, tuple[int, float]] = {}
    for step in result.steps:
        for e in step.evidence:
            ranked[e.model] = (_TIER_RANK.get(e.tier or "", 1), float(e.price or 0))
    models = sorted(ranked, key=lambda m: (*ranked[m], m))
    if len(models) < 2:
        return ""
    router = f"routers/{bench_id}.json"
    return (
        "# Or route per prompt, learned from this bench's checked steps:\n"
        f"#   turnout learn --bench {bench_id} --out {router}\n"
        "# learned:\n"
        "#   kind: learned\n"
        f"#   router: {router}\n"
        f"#   models: [{', '.join(models)}]\n"
        "#   target: {quality: 0.95}\n"
    )


def _default_settings(planned: object) -> Settings | None:
    """The bench's own turnout.yaml, else ./turnout.yaml, if either is still there."""
    for candidate in (planned, "turnout.yaml"):
        if isinstance(candidate, str) and Path(candidate).is_file():
            return load_settings(Path(candidate))
    return None
