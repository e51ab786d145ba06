"""``turnout learn eval --html``: the cost-quality curve as one self-contained HTML page."""

from __future__ import annotations

from turnout.learn.evaluate import Evaluation
from turnout.reports.svg import esc

_W, _H, _PAD = 560, 400, 50


def _xy(share: float, pgr: float, top: float) -> tuple[float, float]:
    x = _PAD + share * (_W - 2 * _PAD)
    y = _H - _PAD - (pgr / top) * (_H - 2 * _PAD)
    return x, y


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def curve_html(ev: Evaluation, title: str = "learned router") -> str:
    """The PGR curve against the share of strong calls, with the random diagonal."""
    top = max(1.0, *ev.curve.pgr)
    pts = " ".join(
        "{:.1f},{:.1f}".format(*_xy(s, p, top))
        for s, p in zip(ev.curve.shares, ev.curve.pgr, strict=True)
    )
    x0, y0 = _xy(0, 0, top)
    x1, y1 = _xy(1, 1, top)
    ticks = "".join(
        f'<text x="{_xy(v, 0, top)[0]:.1f}" y="{_H - _PAD + 18}" '
        f'text-anchor="middle">{v:.0%}</text>'
        f'<text x="{_PAD - 8}" y="{_xy(0, v, top)[1] + 4:.1f}" text-anchor="end">{v:.1f}</text>'
        for v in (0, 0.25, 0.5, 0.75, 1.0)
    )
    facts = (
        f"n={ev.n} · pass rate {esc(ev.cheap)} {ev.cheap_rate:.1%}, {esc(ev.strong)} "
        f"{ev.strong_rate:.1%}, oracle {ev.oracle_rate:.1%} · APGR {_fmt(ev.apgr)} "
        f"(oracle {_fmt(ev.oracle_apgr)}, random 0.5) · CPT(50%) {_fmt(ev.cpt50)} · "
        f"CPT(80%) {_fmt(ev.cpt80)}"
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'font-family="sans-serif" font-size="12">'
        f'<line x1="{x0}" y1="{y0}" x2="{_W - _PAD}" y2="{y0}" stroke="#444"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{_PAD}" stroke="#444"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#999" '
        f'stroke-dasharray="5,4"><title>random router</title></line>'
        f'<polyline points="{pts}" fill="none" stroke="#1f6feb" stroke-width="2"/>'
        f"{ticks}"
        f'<text x="{_W / 2}" y="{_H - 10}" text-anchor="middle">share of calls to '
        f"{esc(ev.strong)}</text>"
        f'<text x="14" y="{_H / 2}" transform="rotate(-90 14 {_H / 2})" '
        f'text-anchor="middle">performance gap recovered</text></svg>'
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title></head>"
        f"<body style='font-family:sans-serif'><h1>{esc(title)}</h1><p>{facts}</p>{svg}"
        "<p>Dashed: a random router. Every distinct score is a threshold.</p></body></html>\n"
    )
