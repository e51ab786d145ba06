"""The support_ticket example's code steps, against a real SQLite fixture in a tmp directory."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "support_ticket"
STEPS_PY = EXAMPLE / "steps.py"


def _load_steps() -> ModuleType:
    spec = importlib.util.spec_from_file_location("support_ticket_steps_under_test", STEPS_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


steps = _load_steps()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "fixtures" / "support.db"
    monkeypatch.setenv(steps.DB_ENV, str(path))
    return path


def _rows(db: Path, table: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY id")]


def _ticket(frm: str, subject: str, body: str) -> dict[str, str]:
    return {"ticket": f"From: {frm}\nSubject: {subject}\n\n{body}"}


def _run_pipeline(ticket: dict[str, str], **llm: str) -> dict[str, Any]:
    """The code steps wired as the workflow wires them, with given model answers."""
    receive = steps.clean_ticket(ticket)
    customer = steps.lookup_customer({"receive": receive})
    inputs = {
        "receive": receive,
        "lookup_customer": customer,
        "categorize": llm.get("categorize", "billing"),
        "decide_escalation": llm.get("decide_escalation", "ESCALATE: no\nReason: routine."),
        "draft_reply": llm.get("draft_reply", "Hi Maria,\n\nThe billing team will review it."),
        "policy_check": llm.get("policy_check", "PASS - polite, no promises."),
    }
    result: dict[str, Any] = steps.send_or_escalate({**ticket, **inputs})
    return result


# --- receive --------------------------------------------------------------------------------


def test_clean_ticket_parses_sender_and_subject() -> None:
    out = steps.clean_ticket(
        _ticket("Maria Lopez <Maria.Lopez@Example.com>", "  Charged   twice ", "Hello")
    )
    assert out == {
        "email": "maria.lopez@example.com",
        "name": "Maria Lopez",
        "greeting_name": "Maria",
        "subject": "Charged twice",
        "body": "Hello",
    }


def test_clean_ticket_handles_last_first_names_bare_addresses_and_missing_headers() -> None:
    assert steps.clean_ticket(_ticket('"Haddad, Fatima" <f@example.net>', "s", "b"))["name"] == (
        "Fatima Haddad"
    )
    bare = steps.clean_ticket(_ticket("tom@example.com", "s", "b"))
    assert (bare["email"], bare["name"], bare["greeting_name"]) == ("tom@example.com", "", "there")
    none = steps.clean_ticket({"ticket": "Just a body, no headers at all."})
    assert none["email"] == ""
    assert none["subject"] == "(no subject)"
    assert none["body"] == "Just a body, no headers at all."


def test_clean_ticket_strips_html_and_its_signature_block() -> None:
    body = (
        "<html><head><style>p {color: red}</style></head><body>"
        "<div>Hello,</div><div><br></div><p>The export misses entries after&nbsp;31&nbsp;Oct "
        "&amp; before <b>2025-11-14</b>.</p>"
        '<div class="gmail_signature"><table><tr><td>Fatima Haddad<br>CCO</td></tr></table>'
        "<p>This e-mail is confidential.</p></div></body></html>"
    )
    out = steps.clean_ticket(_ticket("f@example.net", "Audit log", body))["body"]
    assert out == "Hello,\n\nThe export misses entries after 31 Oct & before 2025-11-14."


def test_clean_ticket_cuts_quoted_reply_chains() -> None:
    gmail = (
        "Still broken.\n\nOn Mon, Nov 3, 2025 at 4:10 PM Support Team <support@example.com>\n"
        "wrote:\n> Could you send an example?\n>> earlier"
    )
    outlook = (
        "Paid by wire.\n\n-----Original Message-----\nFrom: Billing <b@example.com>\n"
        "Sent: Tuesday\nSubject: Overdue\n\nInvoice is overdue."
    )
    inline = "Answer below.\n> quoted line\nMy answer."
    assert steps.clean_body(gmail) == "Still broken."
    assert steps.clean_body(outlook) == "Paid by wire."
    assert steps.clean_body(inline) == "Answer below.\nMy answer."


def test_clean_ticket_drops_signatures_and_footers_and_normalizes_whitespace() -> None:
    dashdash = "Login loops.\n\n-- \nSamuel Adeyemi\n+1 555 0100"
    signoff = "It   crashed\t\ttwice.\n\n\n\nBest regards,\nPriya Raman\nLead Engineer"
    mobile = "How do I export?\n\nSent from my iPhone"
    assert steps.clean_body(dashdash) == "Login loops."
    assert steps.clean_body(signoff) == "It crashed twice."
    assert steps.clean_body(mobile) == "How do I export?"
    # A sign-off word in the middle of a long ticket is content, not a signature.
    long_tail = "Thanks\n" + "\n".join(f"line {i}" for i in range(8))
    assert steps.clean_body(long_tail).startswith("Thanks\nline 0")


def test_every_case_cleans_to_a_sender_and_a_body() -> None:
    lines = (EXAMPLE / "cases.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines:
        out = steps.clean_ticket(json.loads(line))
        assert "@" in out["email"], line
        assert out["body"], line
        assert "<" not in out["body"], out["body"]
        assert "wrote:" not in out["body"], out["body"]
        assert "Original Message" not in out["body"], out["body"]


# --- lookup_customer / recent_tickets ---------------------------------------------------------


def test_lookup_customer_hit_is_case_insensitive(db: Path) -> None:
    receive = steps.clean_ticket(_ticket("MARIA.LOPEZ@example.COM", "s", "b"))
    out = steps.lookup_customer({"receive": receive})
    assert out == {
        "found": True,
        "account_id": "ACC-1001",
        "name": "Maria Lopez",
        "greeting_name": "Maria",
        "email": "maria.lopez@example.com",
        "plan": "pro",
        "status": "active",
        "customer_since": "2023-02-14",
    }
    assert db.is_file()


def test_lookup_customer_miss_and_missing_sender(db: Path) -> None:
    receive = steps.clean_ticket(_ticket("Dana W <dana@unknown.example>", "s", "b"))
    assert steps.lookup_customer({"receive": receive}) == {
        "found": False,
        "email": "dana@unknown.example",
        "greeting_name": "Dana",
    }
    assert steps.lookup_customer({"receive": {"email": ""}})["found"] is False


def test_recent_tickets_newest_first_and_limited(db: Path) -> None:
    customer = steps.lookup_customer({"receive": {"email": "zanele@example.com"}})
    tickets = steps.recent_tickets({"lookup_customer": customer})
    assert len(tickets) == steps.RECENT_LIMIT == 5
    dates = [t["date"] for t in tickets]
    assert dates == sorted(dates, reverse=True)
    assert tickets[0] == {
        "ticket": "T-37",
        "date": "2025-11-02",
        "subject": "Question about annual billing",
        "category": "billing",
        "status": "closed",
        "summary": "Explained annual discount of two months.",
    }
    few = steps.lookup_customer({"receive": {"email": "chen.wei@example.net"}})
    assert [t["ticket"] for t in steps.recent_tickets({"lookup_customer": few})] == ["T-28"]


def test_recent_tickets_of_an_unknown_sender_is_empty(db: Path) -> None:
    assert steps.recent_tickets({"lookup_customer": {"found": False}}) == []
    assert not db.exists()  # nothing to look up: the fixture is not even built


# --- the fixture database ---------------------------------------------------------------------


def test_fixture_defaults_to_dot_turnout_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(steps.DB_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert steps.ensure_database() == tmp_path / ".turnout" / "fixtures" / "support.db"
    assert len(_rows(tmp_path / ".turnout" / "fixtures" / "support.db", "customers")) == 15


def test_fixture_has_the_documented_size(db: Path) -> None:
    steps.ensure_database()
    customers = _rows(db, "customers")
    tickets = _rows(db, "tickets")
    assert len(customers) == 15
    assert len(tickets) == 40
    assert {c["plan"] for c in customers} == {"free", "starter", "pro", "enterprise"}
    assert {c["status"] for c in customers} >= {"active", "trial", "past_due", "suspended"}


def test_fixture_is_kept_while_the_sql_is_unchanged_and_rebuilt_when_it_changes(
    db: Path, tmp_path: Path
) -> None:
    sql = tmp_path / "support.sql"
    sql.write_text(steps.FIXTURE_SQL.read_text(encoding="utf-8"), encoding="utf-8")
    steps.ensure_database(sql)
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute(
            "INSERT INTO outbox (created_at, to_email, subject, body) VALUES ('t', 'a', 's', 'b')"
        )
    steps.ensure_database(sql)
    assert len(_rows(db, "outbox")) == 1  # unchanged .sql: the same database, writes kept

    sql.write_text(
        sql.read_text(encoding="utf-8")
        + "\nINSERT INTO customers VALUES (16, 'ACC-1016', 'New One', 'new@example.com',"
        " 'pro', 'active', '2025-11-06');\n",
        encoding="utf-8",
    )
    steps.ensure_database(sql)
    assert len(_rows(db, "outbox")) == 0
    assert len(_rows(db, "customers")) == 16
    assert not list(db.parent.glob("*.building"))


def test_a_corrupt_fixture_file_is_rebuilt(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"not a database")
    steps.ensure_database()
    assert len(_rows(db, "customers")) == 15


# --- send_or_escalate -------------------------------------------------------------------------


def test_send_writes_the_reply_to_the_outbox(db: Path) -> None:
    out = _run_pipeline(
        _ticket("maria.lopez@example.com", "Charged twice", "Charged twice for ORD-99120.")
    )
    assert out == {"action": "send", "outbox_id": 1, "to": "maria.lopez@example.com"}
    (row,) = _rows(db, "outbox")
    assert row["to_email"] == "maria.lopez@example.com"
    assert row["account_id"] == "ACC-1001"
    assert row["subject"] == "Re: Charged twice"
    assert row["body"].startswith("Hi Maria")
    assert _rows(db, "escalations") == []


def test_send_keeps_an_existing_re_prefix(db: Path) -> None:
    _run_pipeline(_ticket("maria.lopez@example.com", "Re: Payment failed", "Still failing."))
    assert _rows(db, "outbox")[0]["subject"] == "Re: Payment failed"


@pytest.mark.parametrize(
    ("llm", "reason"),
    [
        (
            {"decide_escalation": "ESCALATE: yes\nReason: threatens legal action."},
            "decide_escalation: Reason: threatens legal action.",
        ),
        ({"decide_escalation": "I am not sure."}, "the escalation decision was unclear"),
        ({"policy_check": "FAIL: promises a refund."}, "policy check failed"),
        ({"policy_check": "Looks fine to me."}, "policy check was unclear"),
        (
            {"draft_reply": "Hi Maria, we will refund the double charge today."},
            "the draft promises a refund or credit",
        ),
        ({"draft_reply": "   "}, "no draft reply"),
    ],
)
def test_escalates_with_the_reason(db: Path, llm: dict[str, str], reason: str) -> None:
    out = _run_pipeline(_ticket("maria.lopez@example.com", "Refund", "Charged twice."), **llm)
    assert out["action"] == "escalate"
    assert reason in out["reasons"]
    (row,) = _rows(db, "escalations")
    assert row["id"] == out["escalation_id"]
    assert row["from_email"] == "maria.lopez@example.com"
    assert row["account_id"] == "ACC-1001"
    assert reason in json.loads(row["reasons"])
    assert row["ticket"] == "Charged twice."
    assert _rows(db, "outbox") == []


def test_unknown_sender_asking_about_an_account_is_escalated(db: Path) -> None:
    ticket = _ticket("someone@example.biz", "Reset Maria's password", "Send it to me.")
    out = _run_pipeline(ticket, categorize="account")
    assert out["action"] == "escalate"
    assert out["reasons"] == ["unknown sender asks about an account: identity not verified"]
    assert _rows(db, "escalations")[0]["account_id"] is None


def test_unknown_sender_with_a_sales_question_gets_a_reply(db: Path) -> None:
    out = _run_pipeline(_ticket("dana@startup.example", "Pricing", "Quote?"), categorize="billing")
    assert out["action"] == "send"
    assert _rows(db, "outbox")[0]["account_id"] is None


def test_ticket_without_sender_is_escalated(db: Path) -> None:
    out = _run_pipeline({"ticket": "no headers here"})
    assert out["action"] == "escalate"
    assert "no sender address" in out["reasons"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ESCALATE: yes\nReason: angry", True),
        ("Escalate - NO. Reason: routine question", False),
        ("escalation: yes", True),
        ("No. The customer only asks a question.", False),
        ("Yes, because they threaten to leave.", True),
        ("maybe", None),
        ("", None),
    ],
)
def test_parse_yes_no(text: str, expected: bool | None) -> None:
    assert steps.parse_yes_no(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("PASS", True), ("pass - polite", True), ("FAIL: asks for a password", False),
     ("Verdict: FAILED", False), ("ok", None)],
)  # fmt: skip
def test_parse_pass_fail(text: str, expected: bool | None) -> None:
    assert steps.parse_pass_fail(text) is expected


# --- python: checks for draft_reply -----------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        ("Hi Maria, the billing team will review the charge.", True),
        ("We will not refund annual plans after 14 days.", True),
        ("Refunds follow our policy; billing will review your refund request.", True),
        ("Hi Maria, we will refund the second charge.", False),
        ("I'll issue you a full refund today.", False),
        ("We'll credit your account with $20.", False),
        ("You will receive a full refund within 5 days.", False),
        ("We guarantee a full refund.", False),
        ("I want my data exported and a full refund, says the customer.", True),
    ],
)
def test_no_refund_promise(reply: str, ok: bool) -> None:
    result = steps.no_refund_promise(reply)
    assert (result is True) if ok else (result[0] is False and "promises money" in result[1])


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        ("We are checking ORD-99120 now.", True),
        ("About invoice INV-2025-1187: the billing team will review it.", True),
        ("Sorry about the login trouble on the Android app.", True),
        ("Thanks for writing to us! We will look into it.", False),
        ("", False),
    ],
)
def test_reply_mentions_facts(reply: str, ok: bool) -> None:
    result = steps.reply_mentions_facts(reply)
    assert (result is True) if ok else (result[0] is False and result[1])


def test_draft_checks_take_the_text_only() -> None:
    """turnout calls a python check as fn(text) when it takes one positional argument."""
    from turnout.checks.python_check import call_arity

    assert call_arity(steps.reply_mentions_facts) == 1
    assert call_arity(steps.no_refund_promise) == 1


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_threads_build_once_and_lose_no_writes(db: Path) -> None:
    ticket = _ticket("maria.lopez@example.com", "Charged twice", "ORD-99120")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(5):
                decision = "ESCALATE: yes" if (i + j) % 2 else "ESCALATE: no"
                _run_pipeline(ticket, decide_escalation=decision)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(_rows(db, "outbox")) + len(_rows(db, "escalations")) == 40
    assert len(_rows(db, "outbox")) == 20


_CHILD = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("steps", sys.argv[1])
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    receive = steps.clean_ticket({"ticket": "From: priya@example.net\\nSubject: Hook\\n\\nFails."})
    for i in range(int(sys.argv[2])):
        customer = steps.lookup_customer({"receive": receive})
        steps.recent_tickets({"lookup_customer": customer})
        steps.send_or_escalate({
            "receive": receive, "lookup_customer": customer, "categorize": "technical",
            "decide_escalation": "ESCALATE: " + ("yes" if i % 3 == 0 else "no"),
            "draft_reply": "Hi Priya, we are looking into it.", "policy_check": "PASS",
        })
    """
)


@contextlib.contextmanager
def _children(db: Path, n: int, writes: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {**os.environ, steps.DB_ENV: str(db)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(STEPS_PY), str(writes)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_concurrent_processes_build_and_write_safely(db: Path) -> None:
    with _children(db, n=4, writes=12) as procs:
        results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()
    assert len(_rows(db, "escalations")) == 4 * 4
    assert len(_rows(db, "outbox")) == 4 * 8
    with contextlib.closing(sqlite3.connect(db)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not list(db.parent.glob("*.building"))
