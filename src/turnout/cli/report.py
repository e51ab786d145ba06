"""``turnout report``: reports for people, written as files.

``turnout report bench BENCH_ID --html OUT.html`` writes a bench as one
self-contained HTML page (no network needed to view it) and its charts as PNG
files next to it (``OUT-cost-vs-success.png``, ``OUT-step-spend.png``,
``OUT-step-pass.png``).

``turnout report ab POLICY`` shows how the variants of an A/B test did over a period
(text, ``--json`` or ``--html OUT``); ``turnout report weekly`` the period's spend.
"""

from __future__ import annotations

from pathlib import Path

import click

from turnout.bench.analysis import analyze
from turnout.bench.data import load_bench_data
from turnout.cli.traces import opened_store, store_option
from turnout.errors import StoreError
from turnout.reports import load_pricing, write_bench_report
from turnout.tracing import sqlite_path_of


@click.group("report")
def report_group() -> None:
    """Write reports: a bench as an HTML page with charts, an A/B test, the weekly report."""


@report_group.command("bench")
@click.argument("bench_id")
@click.option("--html", "html_out", required=True, metavar="OUT.html", help="Write the page here.",
              type=click.Path(dir_okay=False, path_type=Path))  # fmt: skip
@click.option("--png-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the chart PNGs here [default: next to the HTML].")  # fmt: skip
@click.option("--no-png", is_flag=True, help="Write only the HTML page.")
@click.option("--baseline", metavar="NAME", help="Compare with this policy [default: the bench's].")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The turnout.yaml whose prices label costs [default: the bench's].")  # fmt: skip
@store_option
def report_bench(
    bench_id: str,
    html_out: Path,
    png_dir: Path | None,
    no_png: bool,
    baseline: str | None,
    config_path: Path | None,
    store_url: str | None,
) -> None:
    """Write bench BENCH_ID (or a unique prefix) as one self-contained HTML page."""
    try:
        db = sqlite_path_of(store_url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if db is not None and not db.exists():
        raise click.ClickException(f"no bench {bench_id!r}: no trace store at {db}")
    with opened_store(store_url) as store:
        data = load_bench_data(store, bench_id)
    analysis = analyze(data, baseline=baseline)
    planned = data.bench.spec.get("config_path")
    config = config_path or (Path(planned) if isinstance(planned, str) else None)
    models = [m for steps in analysis.steps.values() for s in steps for m in s.models]
    pricing = load_pricing(config, models)
    files = write_bench_report(analysis, pricing, html_out, bench=data.bench, png_dir=png_dir,
                               pngs=not no_png)  # fmt: skip
    if files.png_skipped and png_dir is not None:
        raise click.ClickException(f"wrote {files.html}, but no PNGs: {files.png_skipped}")
    click.echo(f"report: {files.html}")
    for path in files.pngs:
        click.echo(f"chart:  {path}")
    if files.png_skipped:
        click.echo(f"no PNG charts: {files.png_skipped}", err=True)


@report_group.command("weekly")
@click.option("--since", metavar="DATE", help="Start: ISO date or age, e.g. 7d [default: 7d].")
@click.option("--until", metavar="DATE", help="End of the period: ISO date or age [default: now].")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def report_weekly(
    since: str | None, until: str | None, store_url: str | None, as_json: bool
) -> None:
    """Spend, cost per run and per session, spend by tier, model and step, cache savings,
    and the routing-efficiency ratio from `turnout flag` (default: the last 7 days)."""
    import json

    from turnout.cli.flag import existing_store
    from turnout.cli.output import make_console
    from turnout.cli.when import parse_since
    from turnout.reports.weekly import weekly_report

    start = parse_since(since) if since else None
    end = parse_since(until) if until else None
    if start is not None and end is not None and start >= end:
        raise click.UsageError("--since must be before --until")
    existing_store(store_url)
    with opened_store(store_url) as store:
        result = weekly_report(store, since=start, until=end)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    result.print(make_console())


@report_group.command("ab")
@click.argument("policy")
@click.option("--since", metavar="DATE", help="Start: ISO date or age, e.g. 7d [default: 7d].")
@click.option("--until", metavar="DATE", help="End of the period: ISO date or age [default: now].")
@click.option("--baseline", metavar="VARIANT", help="Compare with this variant [default: first].")
@click.option("--key", metavar="TAG", help="The tag assignment sticks to [default: the policy's "
              "key from -c, else user].")  # fmt: skip
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The turnout.yaml of the policy (its key; prices to label costs).")  # fmt: skip
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--html", "html_out", metavar="OUT.html", help="Also write an HTML page here.",
              type=click.Path(dir_okay=False, path_type=Path))  # fmt: skip
def report_ab(
    policy: str,
    since: str | None,
    until: str | None,
    baseline: str | None,
    key: str | None,
    config_path: Path | None,
    store_url: str | None,
    as_json: bool,
    html_out: Path | None,
) -> None:
    """How the variants of A/B policy POLICY did: runs, calls, error rate, success with its
    Wilson interval, latency p50/p95, cost per run and per successful run with bootstrap
    intervals, the verdict against the baseline, and a check of sticky assignment."""
    import json

    from turnout.cli.flag import existing_store
    from turnout.cli.output import make_console
    from turnout.cli.when import parse_since
    from turnout.reports.ab import ab_report
    from turnout.reports.ab_view import print_ab, write_ab_html
    from turnout.reports.prices import Pricing
    from turnout.reports.weekly import default_period

    start, end = default_period(parse_since(until) if until else None)
    start = parse_since(since) if since else start
    if start >= end:
        raise click.UsageError("--since must be before --until")
    if key is None and config_path is not None:
        from turnout.config import load_settings

        cfg = load_settings(config_path).policies.get(policy)
        key = str(cfg.options.get("key", "user")) if cfg is not None and cfg.kind == "ab" else None
    existing_store(store_url)
    with opened_store(store_url) as store:
        report = ab_report(store, policy, since=start, until=end, key=key or "user",
                           baseline=baseline)  # fmt: skip
    if html_out is not None:
        models = [m for v in report.variants for m in v.models]
        pricing = (
            load_pricing(config_path, models)
            if config_path is not None
            else Pricing(problem="no config given (-c), so price labels are unknown")
        )
        write_ab_html(report, pricing, html_out)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        print_ab(report, make_console())
    if html_out is not None:
        click.echo(f"report: {html_out}", err=as_json)
