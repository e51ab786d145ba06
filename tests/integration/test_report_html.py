"""The HTML bench report, opened in real headless Chromium.

A real bench (three policies against the fake OpenAI server on a real socket,
recorded in a real SQLite trace store) is written with ``turnout report bench``;
Chromium (Debian's ``chromium``) loads the page from disk with no network and
takes a screenshot. The screenshot must show the charts, drawn: the policies'
colours in the bars, the steps' colours in the spend bars, and the scatter's
error bars (drawn at 75% opacity, so their blended colour appears nowhere else).
Chromium's console log must be empty. Two controls prove the checks can fail: a
page with a script error is caught, and a page without charts is caught.

On a machine without Chromium the browser tests skip and say why; .ci/run
installs it, so CI always runs them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from turnout.cli.main import cli, main
from turnout.cli.report import report_group
from turnout.reports import png as png_module
from turnout.reports.svg import POLICY_COLORS, STEP_COLORS
from turnout.testing.fake_openai import FakeOpenAI
from turnout.testing.server_thread import ServerThread
from turnout.wire.requests import prompt_text

POLICIES = ("all_frontier", "mixed", "all_cheap")
LLM_STEPS = ("planner", "implementer")
STAND_IN = "local stand-in priced at claude-haiku-4-5 rates"
CHROMIUM = shutil.which("chromium") or next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (apt-get install chromium; .ci/run installs it), "
    "so the HTML report is not opened in a browser here",
)
WINDOW = (1024, 3600)  # the charts are well within the first 3600 px


# -- a real bench --------------------------------------------------------------------


def reply(body: Mapping[str, Any]) -> str:
    """The cheap model fumbles hard tasks: the planner on 'tricky' and 'hard' ones, the
    implementer on 'hard' ones; the frontier model never does."""
    text = prompt_text(body)
    planning = "Plan this change" in text
    if body.get("model") == "claude-haiku-4-5" and (
        "hard" in text or (planning and "tricky" in text)
    ):
        return "risks and tests"
    return "risks, tests and rollback are covered"


@dataclass
class Bench:
    root: Path
    store: Path
    bench_id: str


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("report")
    with FakeOpenAI.start_in_thread(reply=reply) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_API_KEY", "sk-test-report")
        mp.chdir(root)
        yield _run_bench(root, server)


def _run_bench(root: Path, server: ServerThread) -> Bench:
    (root / "turnout.yaml").write_text(f"""
providers:
  hosted: {{kind: openai, base_url: "{server.base_url}", api_key_env: FAKE_API_KEY}}
models:
  opus:  {{provider: hosted, id: claude-opus-4-8, tier: frontier, price: {{input: 5.00, output: 25.00}}}}
  haiku: {{provider: hosted, id: claude-haiku-4-5, tier: efficient, price: {{input: 1.00, output: 5.00}},
           price_label: "{STAND_IN}"}}
policies:
  all_frontier: {{kind: static, model: opus}}
  mixed: {{kind: per_step, default: opus, steps: {{implementer: haiku}}}}
  all_cheap: {{kind: static, model: haiku}}
""")
    (root / "workflow.yaml").write_text("""
name: csv-export
inputs: [task]
steps:
  - id: planner
    prompt: "Plan this change: {{ task }}. List risks, tests and rollback."
    checks: [{contains_all: [risks, tests, rollback]}]
  - id: implementer
    inputs: [planner]
    prompt: "Implement {{ task }} following this plan:\\n{{ planner }}"
    checks: [{contains_all: [rollback]}]
  - id: words
    kind: code
    inputs: [implementer]
    run: "steps:count_words"
""")
    (root / "steps.py").write_text(
        "def count_words(inputs):\n    return len(inputs['implementer'].split())\n"
    )
    tasks = ["add a csv export", "export with filters", "tricky unicode export", "hard streaming"]
    (root / "cases.jsonl").write_text("".join(json.dumps({"task": t}) + "\n" for t in tasks))
    store = root / "traces.db"
    code = main(["bench", "workflow.yaml", "-c", "turnout.yaml", "--policies", ",".join(POLICIES),
                 "--runs", "3", "--cases", "cases.jsonl", "--concurrency", "4",
                 "--json", "bench.json", "--store", str(store)])  # fmt: skip
    assert code == 0
    data = json.loads((root / "bench.json").read_text())
    rates = {p: data["policies"][p]["successes"] for p in POLICIES}
    assert rates == {"all_frontier": 12, "mixed": 9, "all_cheap": 6}
    return Bench(root, store, data["bench_id"])


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def written(bench: Bench) -> tuple[Path, str]:
    cli.add_command(report_group)
    html = bench.root / "out" / "report.html"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["report", "bench", bench.bench_id, "--html", str(html),
                     "--store", str(bench.store)])  # fmt: skip
    assert code == 0
    return html, out.getvalue()


# -- the page, as written ----------------------------------------------------------------


def test_report_prints_where_the_files_are(written: tuple[Path, str]) -> None:
    html, out = written
    assert f"report: {html}" in out
    if png_module.unavailable() is None:
        for name in ("cost-vs-success", "step-spend", "step-pass"):
            png = html.parent / f"report-{name}.png"
            assert f"chart:  {png}" in out
            head = png.read_bytes()[:24]
            assert head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") == 2080
        # the PNG is the same chart: the intervals are drawn in it too
        scatter = colours(decode_png((html.parent / "report-cost-vs-success.png").read_bytes()))
        for colour in POLICY_COLORS[: len(POLICIES)]:
            assert count_near(scatter, colour) > 300
            assert count_near(scatter, over_white(colour, 0.75), tol=4) > 300


def test_page_is_self_contained_and_labels_stand_ins(written: tuple[Path, str]) -> None:
    page = written[0].read_text("utf-8")
    lower = page.lower()
    for banned in ("<script", "<link", "<img", "@import", "url(", " src=", "href="):
        assert banned not in lower
    assert page.count("<svg ") == 3
    assert "haiku" in page and STAND_IN in page and "Costs are not real spend" in page
    assert "mixed: " in page and "cheaper per successful run than all_frontier" in page


def test_unknown_bench_is_one_line(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, "bench", "nope", "--html", str(bench.root / "x.html"),
                            "--store", str(bench.store))  # fmt: skip
    assert code != 0
    assert err.strip().count("\n") == 0 and "no bench 'nope'" in err
    assert not (bench.root / "x.html").exists()


def test_missing_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, "bench", "b1", "--html", str(tmp_path / "x.html"),
                          "--store", str(tmp_path / "none.db"))  # fmt: skip
    assert code != 0 and "no trace store at" in err and err.strip().count("\n") == 0


def test_unknown_baseline_is_one_line(bench: Bench, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, "bench", bench.bench_id, "--html", str(bench.root / "y.html"),
                          "--store", str(bench.store), "--baseline", "nope")  # fmt: skip
    assert code != 0 and "baseline 'nope'" in err and err.strip().count("\n") == 0


# -- the page, in a browser --------------------------------------------------------------


@needs_chromium
def test_report_renders_in_headless_chromium(written: tuple[Path, str], tmp_path: Path) -> None:
    shot = render(written[0], tmp_path)
    assert shot.console == [], f"console messages: {shot.console}"
    png = shot.png
    assert (png.width, png.height) == WINDOW
    problems = chart_problems(png, policies=len(POLICIES), steps=len(LLM_STEPS))
    assert problems == [], problems


@needs_chromium
def test_a_broken_page_is_caught(written: tuple[Path, str], tmp_path: Path) -> None:
    """The control: a page with a script error and without its charts fails both checks."""
    page = written[0].read_text("utf-8")
    start, end = page.index('<h2 id="charts">'), page.index('<h2 id="steps">')
    broken = tmp_path / "broken.html"
    broken.write_text(page[:start] + "<script>notDefined();</script>" + page[end:])
    shot = render(broken, tmp_path)
    assert any("notDefined" in line for line in shot.console), shot.console
    problems = chart_problems(shot.png, policies=len(POLICIES), steps=len(LLM_STEPS))
    assert any("error bars" in p for p in problems), problems
    assert any("spend bars" in p for p in problems), problems
    assert not any("nearly blank" in p for p in problems)  # the tables are still there


# -- helpers: Chromium, a tiny PNG decoder, colour counts ----------------------------------


@dataclass
class Png:
    width: int
    height: int
    rows: list[bytes]  # RGB, 3 bytes a pixel


@dataclass
class Shot:
    path: Path
    console: list[str]

    @property
    def png(self) -> Png:
        return decode_png(self.path.read_bytes())


def render(page: Path, tmp: Path) -> Shot:
    assert CHROMIUM is not None
    out = tmp / f"{page.stem}.png"
    profile = tmp / f"profile-{page.stem}"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
        "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={out}", page.resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.exists(), (
        f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return Shot(out, console)


def decode_png(data: bytes) -> Png:
    """8-bit RGB or RGBA, not interlaced: what Chromium and CairoSVG write."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prior = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        row = _unfilter(kind, line, prior, bpp)
        rows.append(row if bpp == 3 else bytes(b for i, b in enumerate(row) if i % 4 != 3))
        prior = row
    return Png(width, height, rows)


def _unfilter(kind: int, line: bytes, prior: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
    out = bytearray(line)
    n = len(out)
    if kind == 1:
        for i in range(bpp, n):
            out[i] = (out[i] + out[i - bpp]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = out[i - bpp] if i >= bpp else 0
            b, c = prior[i], (prior[i - bpp] if i >= bpp else 0)
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 0xFF
    else:
        raise AssertionError(f"unknown PNG filter {kind}")
    return bytes(out)


def colours(png: Png) -> Counter[tuple[int, int, int]]:
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in png.rows:
        counts.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    return counts


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


def count_near(
    counts: Counter[tuple[int, int, int]], target: str | tuple[int, int, int], tol: int = 3
) -> int:
    t = rgb(target) if isinstance(target, str) else target
    return sum(
        n for c, n in counts.items() if all(abs(x - y) <= tol for x, y in zip(c, t, strict=True))
    )


def over_white(hex_colour: str, opacity: float) -> tuple[int, int, int]:
    r, g, b = rgb(hex_colour)
    return tuple(round(opacity * v + (1 - opacity) * 255) for v in (r, g, b))  # type: ignore[return-value]


def chart_problems(png: Png, *, policies: int, steps: int) -> list[str]:
    """What is missing from a screenshot of the report (an empty list: all drawn)."""
    counts = colours(png)
    total = png.width * png.height
    problems = []
    white = counts[(255, 255, 255)]
    if total - white < total * 0.03:
        problems.append(f"the page is nearly blank ({total - white} of {total} pixels not white)")
    for i, colour in enumerate(POLICY_COLORS[:policies]):
        if count_near(counts, colour) < 3000:
            problems.append(f"policy {i} ({colour}): too few pixels for its pass-rate bars")
        # the scatter draws error bars at 75% opacity: that blend appears nowhere else
        if count_near(counts, over_white(colour, 0.75), tol=4) < 150:
            problems.append(f"policy {i} ({colour}): no error bars in the cost-vs-success chart")
    for i, colour in enumerate(STEP_COLORS[:steps]):
        if count_near(counts, colour) < 1000:
            problems.append(f"step {i} ({colour}): no spend bars")
    return problems
