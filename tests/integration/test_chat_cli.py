"""``turnout chat`` and the façade under it, against the fake server on a real socket,
with a real SQLite trace store: one request traced as a one-step run."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.canned_upstream import CannedUpstream
from turnout.cli.main import main
from turnout.config.loader import load_settings
from turnout.errors import AllAttemptsFailed, ConfigError
from turnout.facade import Turnout
from turnout.tracing import open_store
from turnout.types import StreamEnd, TextDelta

REPLY = "risks, tests and rollback are covered"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("stream", [False, True])
def test_chat_prints_the_answer_then_one_line(
    project: Any, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    args = ["chat", "-c", "turnout.yaml", "-p", "all_frontier", "--store", str(project.store)]
    code, out, err = cli(capsys, *args, *(["--stream"] if stream else []), "Plan the export")
    assert code == 0
    assert out.strip() == REPLY
    line = err.strip().splitlines()[-1]
    assert line.startswith("opus · 1 attempt · ") and "static" in line and "$" in line
    [run] = open_store(str(project.store)).list_runs()
    assert (run.workflow, run.policy, run.status, run.calls) == (
        "chat",
        "all_frontier",
        "succeeded",
        1,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_chat_json_has_the_documented_keys(
    project: Any, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    args = ["chat", "-c", "turnout.yaml", "-m", "haiku", "--json", "--store", str(project.store)]
    code, out, _ = cli(capsys, *args, *(["--stream"] if stream else []), "--tag", "user=42", "hi")
    assert code == 0
    data = json.loads(out)
    keys = {"answer", "model", "policy", "reason", "attempts", "usage", "cost_usd", "latency_s",
            "run_id"}  # fmt: skip
    assert keys <= data.keys()
    assert data["answer"] == REPLY and data["model"] == "haiku"
    [attempt] = data["attempts"]
    assert set(attempt) >= {"model", "status", "error", "latency_s", "input_tokens",
                            "output_tokens", "cost_usd"}  # fmt: skip
    trace = open_store(str(project.store)).get_run(data["run_id"])
    assert trace is not None and trace.run.tags["user"] == "42"
    assert [a.model for a in trace.attempts] == ["haiku"]


def test_chat_reads_the_prompt_from_stdin(
    project: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Plan the export\n"))
    code, out, _ = cli(capsys, "chat", "-c", "turnout.yaml", "-m", "opus", "--no-trace")
    assert code == 0 and out.strip() == REPLY
    sent = project.server.server.requests[-1].body["messages"]
    assert sent[-1]["content"] == "Plan the export\n"


def test_chat_exits_1_naming_each_failed_attempt(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "chat", "-c", "turnout.yaml", "-p", "broken", "--no-trace", "hi")
    assert code == 1
    assert "error:" in err and "ghost" in err and "connection" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-p", "nope", "hi"], "nope"),
        (["-m", "nope", "hi"], "nope"),
        (["-p", "mixed", "-m", "opus", "hi"], "exclusive"),
        (["--tag", "broken", "hi"], "--tag"),
    ],
)
def test_chat_bad_input_is_a_usage_error(
    project: Any, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    code, _, err = cli(capsys, "chat", "-c", "turnout.yaml", "--no-trace", *args)
    assert code == 2 and says in err


async def test_facade_chat_stream_and_run_share_one_store(project: Any) -> None:
    settings = load_settings(project.root / "turnout.yaml")
    async with Turnout(settings, store=str(project.store)) as t:
        a = await t.chat([{"role": "user", "content": "hi"}], policy="all_frontier", step="draft",
                         session="s-1")  # fmt: skip
        assert a.ok and a.model == "opus" and a.text == REPLY and a.cost > 0
        s = t.stream([{"role": "user", "content": "hi"}], model="haiku")
        events = [e async for e in s]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY
        assert isinstance(events[-1], StreamEnd)
        assert s.answer is not None and s.answer.model == "haiku"
        failed = await t.chat([{"role": "user", "content": "hi"}], policy="broken")
        assert not failed.ok and failed.error is not None
        with pytest.raises(ConfigError, match="max_tokens_param must be max_tokens or"):
            await t.chat([{"role": "user", "content": "hi"}], model="haiku", max_tokens=5,
                         max_tokens_param="max_completion_token")  # fmt: skip
        assert isinstance(failed.error, AllAttemptsFailed) or "ghost" in str(failed.error)
    store = open_store(str(project.store))
    runs = {r.run_id: r for r in store.list_runs()}
    assert {a.run_id, s.answer.run_id, failed.run_id} <= set(runs)
    assert runs[a.run_id].tags["session"] == "s-1"
    trace = store.get_run(a.run_id)
    assert trace is not None and [st.step_id for st in trace.steps] == ["draft"]
    assert runs[failed.run_id].status == "failed"


async def test_facade_defer_builds_the_records_when_the_server_says(project: Any) -> None:
    settings = load_settings(project.root / "turnout.yaml")
    later: list[Callable[[], None]] = []
    async with Turnout(settings, store=str(project.store)) as t:
        t.defer = later.append  # a server passes its loop's call_soon
        a = await t.chat([{"role": "user", "content": "hi"}], model="haiku", step="draft")
        s = t.stream([{"role": "user", "content": "hi"}], model="haiku")
        _ = [e async for e in s]
        assert a.ok and s.answer is not None and len(later) == 2  # answered, not yet recorded
        assert t.writer is not None
        await t.writer.aflush()
        running = {r.run_id: r.status for r in open_store(str(project.store)).list_runs()}
        assert running[a.run_id] == "running"
        for build in later:
            build()
    runs = {r.run_id: r for r in open_store(str(project.store)).list_runs()}
    assert runs[a.run_id].status == runs[s.answer.run_id].status == "succeeded"
    trace = open_store(str(project.store)).get_run(a.run_id)
    assert trace is not None and [st.step_id for st in trace.steps] == ["draft"]


def test_chat_checks_the_api_key_before_any_call(
    project: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_API_KEY")
    code, _, err = cli(
        capsys, "chat", "-c", "turnout.yaml", "-p", "all_frontier", "--no-trace", "hi"
    )
    assert code == 2 and "FAKE_API_KEY" in err
    assert project.server.server.requests == []


REFUSAL = "I'm sorry, I can't help with that request."


@pytest.fixture
def refusing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CannedUpstream]:
    """An upstream that refuses (OpenAI's ``message.refusal``, no content), in a thread of
    its own, and a turnout.yaml pointing at it."""
    loop = asyncio.new_event_loop()
    up = CannedUpstream()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(up.__aenter__(), loop).result(10)
    monkeypatch.setenv("FAKE_API_KEY", "sk-test-refusing")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "turnout.yaml").write_text(
        f"providers:\n  up: {{kind: openai, base_url: '{up.base_url}', api_key_env: FAKE_API_KEY}}\n"
        "models:\n  small: {provider: up, id: small-1, tier: efficient,"
        " price: {input: 1, output: 1}}\n"
        "policies:\n  only: {kind: static, model: small}\n"
    )
    try:
        yield up
    finally:
        asyncio.run_coroutine_threadsafe(up.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _refusal_chunks() -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "small-1",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip

    pieces = ["I'm sorry, ", "I can't help ", "with that request."]
    return [
        chunk({"role": "assistant", "content": None, "refusal": ""}),
        *(chunk({"refusal": p}) for p in pieces),
        chunk({}, finish="stop"),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_chat_shows_what_the_model_said_in_refusing(
    refusing: CannedUpstream, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    message = {"role": "assistant", "content": None, "refusal": REFUSAL}
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "small-1",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19}}  # fmt: skip
    for as_json in (False, True):
        refusing.answer(_refusal_chunks() if stream else body)
        args = ["chat", "-c", "turnout.yaml", "-p", "only", "--no-trace"]
        args += ["--stream"] if stream else []
        args += ["--json"] if as_json else []
        code, out, err = cli(capsys, *args, "How do I pick a lock?")
        assert code == 0, err
        if as_json:
            data = json.loads(out)
            assert (data["answer"], data["refusal"]) == ("", REFUSAL)
        else:
            assert out.strip() == REFUSAL
