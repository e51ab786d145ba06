"""A bench as one self-contained HTML page (and its charts as PNG files).

The page has no scripts, no external fonts, stylesheets or images: the charts
are inline SVG (:mod:`turnout.reports.bench_charts`), so it opens offline and
can be mailed or attached as it is. It shows, in order: the verdicts against the
baseline, the comparison table, the three charts, the per-step table and the
prices that every cost was computed with (stand-ins labelled as such).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from turnout import __version__
from turnout.bench.analysis import BenchAnalysis, Comparison, PolicyStats
from turnout.reports import png
from turnout.reports.bench_charts import (
    CHART_TITLES,
    CHARTS,
    bench_charts,
    policy_colors,
    runs_each,
)
from turnout.reports.fmt import DASH, count, pct, pct_span, secs, secs_span, usd, usd_span
from turnout.reports.prices import Pricing, per_m
from turnout.reports.svg import esc
from turnout.tracing.meta import BenchRecord

CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d8dee4;
  --soft: #f6f8fa; --good: #1a7f37; --bad: #b42318; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink);
  font: 14px/1.5 "DejaVu Sans", "Liberation Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
code { font: 13px "DejaVu Sans Mono", "Liberation Mono", monospace; background: var(--soft);
  padding: 1px 5px; border-radius: 4px; }
.meta { color: var(--muted); margin: 0; }
.banner { border: 1px solid var(--line); border-left: 4px solid var(--warn); background: #fff8e6;
  padding: 10px 14px; margin: 18px 0 0; border-radius: 4px; }
.banner.info { border-left-color: #2f6db5; background: #f0f6ff; }
.verdicts { list-style: none; padding: 0; margin: 0; }
.verdicts li { padding: 10px 14px; border: 1px solid var(--line); border-radius: 6px;
  margin: 8px 0; border-left: 5px solid var(--c, #888); }
.chip { display: inline-block; font-size: 12px; padding: 0 8px; border-radius: 10px;
  margin-right: 6px; border: 1px solid currentColor; }
.chip.sig { color: var(--good); } .chip.ns { color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums;
  font-size: 13px; }
th, td { padding: 6px 7px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { text-align: left; background: var(--soft); font-weight: 600; }
td.n { text-align: right; white-space: nowrap; }
th.n { text-align: right; }
.wide { overflow-x: auto; }
td.route { white-space: nowrap; }
.tag { margin-left: 6px; font-size: 11px; font-weight: normal; color: var(--muted);
  border: 1px solid var(--line); border-radius: 8px; padding: 0 6px; }
.ci { display: block; color: var(--muted); font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  background: var(--c); margin-right: 6px; }
figure { margin: 18px 0 0; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid var(--line);
  border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.note { color: var(--muted); font-size: 12px; margin: 6px 0 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line);
  padding-top: 10px; }
@media print { main { padding: 0; } figure, table { break-inside: avoid; } }
"""

COST_MARK = "†"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    html: Path
    pngs: tuple[Path, ...] = ()
    png_skipped: str | None = None
    """Why no PNGs were written (the renderer is not installed), if so."""


def render_bench_html(
    analysis: BenchAnalysis,
    pricing: Pricing,
    *,
    bench: BenchRecord | None = None,
    charts: dict[str, str] | None = None,
    generated_at: float | None = None,
) -> str:
    """The whole page as a string."""
    charts = charts if charts is not None else bench_charts(analysis, pricing)
    colors = policy_colors(analysis)
    body = [
        _head(analysis, bench, generated_at),
        _prices_banner(pricing),
        _verdicts(analysis, colors),
        _comparison(analysis, colors, pricing),
        '<h2 id="charts">Charts</h2>',
        *(_figure(name, charts[name]) for name in CHARTS if name in charts),
        _steps(analysis, colors, pricing),
        _price_table(pricing),
        _foot(analysis, generated_at),
    ]
    title = f"turnout bench {analysis.bench_id} · {analysis.workflow}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_bench_report(
    analysis: BenchAnalysis,
    pricing: Pricing,
    html_path: Path,
    *,
    bench: BenchRecord | None = None,
    png_dir: Path | None = None,
    pngs: bool = True,
) -> ReportFiles:
    """Write the page, and each chart as ``<stem>-<chart>.png`` (next to it by default)."""
    charts = bench_charts(analysis, pricing)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_bench_html(analysis, pricing, bench=bench, charts=charts), "utf-8")
    if not pngs:
        return ReportFiles(html_path)
    missing = png.unavailable()
    if missing is not None:
        return ReportFiles(html_path, png_skipped=missing)
    where = png_dir if png_dir is not None else html_path.parent
    where.mkdir(parents=True, exist_ok=True)
    written = tuple(
        png.svg_to_png(charts[name], where / f"{html_path.stem}-{name}.png") for name in CHARTS
    )
    return ReportFiles(html_path, written)


# -- sections --------------------------------------------------------------------------


def _head(analysis: BenchAnalysis, bench: BenchRecord | None, generated_at: float | None) -> str:
    parts = [f"{len(analysis.policies)} policies", runs_each(analysis.policies),
             f"{analysis.level * 100:g}% intervals"]  # fmt: skip
    if analysis.baseline:
        parts.append(f"baseline {analysis.baseline}")
    if bench is not None:
        cases = bench.spec.get("cases") or []
        if cases and bench.spec.get("runs"):
            parts.append(f"{len(cases)} case(s) × {bench.spec['runs']} repeat(s)")
        parts.append("started " + time.strftime("%Y-%m-%d %H:%M", time.localtime(bench.created_at)))
    out = [
        f"<header><h1>Bench <code>{esc(analysis.bench_id)}</code> · {esc(analysis.workflow)}</h1>",
        f'<p class="meta">{esc(" · ".join(parts))}</p></header>',
    ]
    if bench is not None and bench.status != "finished":
        out.append(
            f'<p class="banner">This bench is <b>{esc(bench.status)}</b>: the figures cover the '
            f"runs finished so far. Finish it with <code>turnout bench --resume "
            f"{esc(analysis.bench_id)}</code>.</p>"
        )
    return "".join(out)


def _prices_banner(pricing: Pricing) -> str:
    if pricing.problem:
        return f'<p class="banner">{esc(pricing.note())}</p>'
    if not pricing.labelled:
        return ""
    kind = "banner" if pricing.has_stand_ins else "banner info"
    items = "; ".join(f"<b>{esc(m.name)}</b>: {esc(m.label)}" for m in pricing.labelled)
    lead = "Costs are not real spend. " if pricing.has_stand_ins else ""
    return f'<p class="{kind}">{COST_MARK} {lead}How costs are priced: {items}.</p>'


def _verdicts(analysis: BenchAnalysis, colors: dict[str, str]) -> str:
    head = '<h2 id="verdicts">Verdicts against the baseline'
    if not analysis.comparisons:
        why = "a single policy" if len(analysis.policies) < 2 else "no baseline"
        return f'{head}</h2><p class="note">Nothing to compare: {why}.</p>'
    items = [_verdict(c, colors) for c in analysis.comparisons]
    return (
        f"{head} <code>{esc(analysis.baseline or '')}</code></h2>"
        f'<ul class="verdicts">{"".join(items)}</ul>'
        f'<p class="note">Cost: the saving in cost per successful run, with a bootstrap interval '
        f"of the ratio. Success: the difference in success rate, with Newcombe's interval. "
        f"Significant when the interval excludes zero.</p>"
    )


def _verdict(c: Comparison, colors: dict[str, str]) -> str:
    def chip(what: str, significant: bool) -> str:
        cls, word = ("sig", "significant") if significant else ("ns", "not significant")
        return f'<span class="chip {cls}">{what}: {word}</span>'

    if c.cost_saving is None:
        cost_chip = '<span class="chip ns">cost: not comparable</span>'
        saving = "no cost saving to compute"
    else:
        cost_chip = chip("cost", c.cost_significant)
        saving = f"cost saving {pct(c.cost_saving)} ({pct_span(c.cost_saving_ci)})"
    details = (
        f"{saving}; success {c.success_diff * 100:+.0f} points ({pct_span(c.success_diff_ci)})"
    )
    return (
        f'<li style="--c: {colors.get(c.policy, "#888")}">{esc(c.verdict)}'
        f'<span class="ci">{cost_chip}{chip("success", c.success_significant)}'
        f"{esc(details)}</span></li>"
    )


def _num(value: str, ci: str | None = None) -> str:
    extra = f'<span class="ci">{esc(ci)}</span>' if ci is not None else ""
    return f'<td class="n">{esc(value)}{extra}</td>'


def _comparison(analysis: BenchAnalysis, colors: dict[str, str], pricing: Pricing) -> str:
    level = f"{analysis.level * 100:g}% CI"
    cols = ["Route", f"Successful runs ({level})", f"Cost per successful run{COST_MARK} ({level})",
            f"Latency per successful run ({level})", f"Cost{COST_MARK}", "Calls",
            "Tokens: total / output", "Latency: total / wall", "Run latency: p50 / p95",
            "Score (checks)"]  # fmt: skip
    head = "".join(f'<th class="{"" if i == 0 else "n"}">{esc(c)}</th>' for i, c in enumerate(cols))
    rows = [_policy_row(p, colors, p.policy == analysis.baseline) for p in analysis.policies]
    return (
        f'<h2 id="comparison">Comparison</h2><div class="wide"><table>'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">{COST_MARK} {esc(pricing.note())} Cost per successful run is '
        f"everything a policy spent, failed runs included, divided by its successful runs; "
        f"latency likewise (the sum of step latencies). Wall time is the runs' elapsed time.</p>"
    )


def _route(policy: str, colors: dict[str, str], base: bool = False) -> str:
    tag = ' <span class="tag">baseline</span>' if base else ""
    return (
        f'<td class="route"><span class="swatch" style="--c: {colors.get(policy, "#888")}">'
        f"</span><b>{esc(policy)}</b>{tag}</td>"
    )


def _policy_row(p: PolicyStats, colors: dict[str, str], base: bool) -> str:
    score = DASH if p.score is None else f"{p.score:.2f} ({p.checks_passed}/{p.checks_total})"
    return (
        "<tr>"
        + _route(p.policy, colors, base)
        + _num(f"{pct(p.success_rate)} ({p.successes}/{p.runs})", pct_span(p.success_ci))
        + _num(usd(p.cost_per_success), usd_span(p.cost_per_success_ci))
        + _num(secs(p.latency_per_success_s), secs_span(p.latency_per_success_ci))
        + _num(usd(p.cost_usd))
        + _num(count(p.calls))
        + _num(f"{count(p.total_tokens)} / {count(p.output_tokens)}")
        + _num(f"{secs(p.total_latency_s)} / {secs(p.wall_s)}")
        + _num(f"{secs(p.latency_p50_s)} / {secs(p.latency_p95_s)}")
        + _num(score)
        + "</tr>"
    )


def _figure(name: str, svg: str) -> str:
    return (
        f'<figure id="chart-{esc(name)}">{svg}<figcaption>{esc(CHART_TITLES[name])} '
        f"(also written as a PNG file: <code>*-{esc(name)}.png</code>)</figcaption></figure>"
    )


def _steps(analysis: BenchAnalysis, colors: dict[str, str], pricing: Pricing) -> str:
    cols = ["Route", "Step", "Model (most used first)", "Runs", "Pass rate", "Spend" + COST_MARK,
            "Share of spend", "Latency", "Share of latency"]  # fmt: skip
    head = "".join(f'<th class="{"n" if i >= 3 else ""}">{esc(c)}</th>' for i, c in enumerate(cols))
    rows = []
    for p in analysis.policies:
        steps = analysis.steps.get(p.policy, ())
        for i, s in enumerate(steps):
            who = _route(p.policy, colors).replace("<td ", f'<td rowspan="{len(steps)}" ', 1)
            who = who if i == 0 else ""
            models = ", ".join(s.models) or ("code" if s.n else "did not run")
            rate = DASH if s.pass_rate is None else f"{pct(s.pass_rate)} ({s.passed}/{s.n})"
            rows.append(
                f"<tr>{who}<td>{esc(s.step_id)}</td><td>{esc(models)}</td>"
                + _num(count(s.n))
                + _num(rate, pct_span(s.pass_ci) if s.pass_ci is not None else None)
                + _num(usd(s.cost_usd))
                + _num(pct(s.spend_share))
                + _num(secs(s.latency_s))
                + _num(pct(s.latency_share))
                + "</tr>"
            )
    return (
        f'<h2 id="steps">Per step: where the tokens go</h2><div class="wide"><table>'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">{COST_MARK} {esc(pricing.note())} Spend and latency are totals over '
        f"all the policy's runs.</p>"
    )


def _price_table(pricing: Pricing) -> str:
    if not pricing.models:
        return ""
    rows = "".join(
        f"<tr><td>{esc(m.name)}</td><td>{esc(m.tier or DASH)}</td>"
        + _num(per_m(m.input_per_m))
        + _num(per_m(m.output_per_m))
        + f"<td>{esc(m.label or '')}</td></tr>"
        for m in pricing.models
    )
    src = f" from <code>{esc(pricing.source)}</code>" if pricing.source else ""
    return (
        f'<h2 id="prices">Models and prices{src}</h2><table><thead><tr><th>Model</th>'
        '<th>Tier</th><th class="n">Input, USD / M tokens</th>'
        '<th class="n">Output, USD / M tokens</th><th>Label</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _foot(analysis: BenchAnalysis, generated_at: float | None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(generated_at or time.time()))
    return (
        f"<footer>Generated by turnout {esc(__version__)} on {esc(when)}. Success rates: "
        f"Wilson score intervals. Per successful run figures: percentile bootstrap over runs. "
        f"Differences: Newcombe's hybrid score interval (success rate), bootstrap of the ratio "
        f"(cost). All at {analysis.level * 100:g}%. Regenerate with <code>turnout report bench "
        f"{esc(analysis.bench_id)} --html OUT.html</code>.</footer>"
    )
