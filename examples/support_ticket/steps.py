"""Code steps and checks of the support-ticket example: the parts that need no model.

Each step is called with one dict (the workflow inputs plus the outputs of the steps it
lists as inputs) and returns a JSON-serializable value:

- ``clean_ticket`` (step ``receive``): headers parsed, HTML, quoted replies and signatures removed;
- ``lookup_customer``: the sender's customer record, or ``{"found": false}``;
- ``recent_tickets``: that customer's latest tickets;
- ``send_or_escalate``: writes the reply to the outbox, or the case to the escalations table.

The customer data lives in ``fixtures/support.sql``. It is materialized into a real SQLite
file on first use (``.turnout/fixtures/support.db`` under the working directory, or the path in
``$TURNOUT_SUPPORT_DB``) and rebuilt when the ``.sql`` file changes; the build holds a file
lock. Every call opens its own connection with a busy timeout and writes in ``BEGIN IMMEDIATE``
transactions, so concurrent runs (``turnout bench --concurrency N``) and concurrent processes
do not trip over each other.

``reply_mentions_facts`` and ``no_refund_promise`` are ``python:`` checks for ``draft_reply``
(called with the step's output text only).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import json
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

FIXTURE_SQL = Path(__file__).with_name("fixtures") / "support.sql"
DB_ENV = "TURNOUT_SUPPORT_DB"
DEFAULT_DB = Path(".turnout") / "fixtures" / "support.db"
BUSY_TIMEOUT_S = 30.0
RECENT_LIMIT = 5

_build_lock = threading.Lock()

# ---------------------------------------------------------------------------------------------
# The fixture database
# ---------------------------------------------------------------------------------------------


def database_path() -> Path:
    """Where the fixture database lives: ``$TURNOUT_SUPPORT_DB`` or under the working directory."""
    configured = os.environ.get(DB_ENV)
    return Path(configured) if configured else Path.cwd() / DEFAULT_DB


def ensure_database(sql_path: Path = FIXTURE_SQL) -> Path:
    """Build the database from ``sql_path`` unless an up-to-date copy exists; return its path.

    Builders take an exclusive lock on ``<db>.lock`` (threads and processes alike) and check
    again under it, so the database is built once, and a later builder never replaces a copy
    that others are already writing to. The build goes to a temporary file that atomically
    replaces the old one: a reader never sees half a database.
    """
    script = sql_path.read_text(encoding="utf-8")
    digest = hashlib.sha256(script.encode("utf-8")).hexdigest()
    db = database_path()
    if _fixture_digest(db) == digest:
        return db
    db.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock, _file_lock(db.with_name(db.name + ".lock")):
        if _fixture_digest(db) == digest:
            return db
        fd, tmp = tempfile.mkstemp(prefix=f"{db.name}.", suffix=".building", dir=db.parent)
        os.close(fd)
        try:
            with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as con:
                con.executescript(script)
                con.executescript(
                    "CREATE TABLE fixture_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                )
                con.execute(
                    "INSERT INTO fixture_meta (key, value) VALUES ('sql_sha256', ?)", (digest,)
                )
            os.replace(tmp, db)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return db


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fixture_digest(db: Path) -> str | None:
    if not db.is_file():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        ) as con:
            row = con.execute("SELECT value FROM fixture_meta WHERE key = 'sql_sha256'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


@contextlib.contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A fresh connection to the (materialized) fixture; closed on exit."""
    db = ensure_database()
    con = sqlite3.connect(db, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        yield con
    finally:
        con.close()


def _insert(table: str, row: Mapping[str, Any]) -> int:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with connect() as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return int(cur.lastrowid or 0)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Step 1: receive
# ---------------------------------------------------------------------------------------------

_HEADER_KEYS = {"from", "to", "cc", "subject", "date", "reply-to"}
_HEADER = re.compile(r"^([A-Za-z][A-Za-z-]*):[ \t]*(.*)$")
_HTML_HINT = re.compile(r"</?(html|body|div|p|br|span|table|td|a|b|i|strong|em|font|img)\b", re.I)
_QUOTE_START = re.compile(
    r"^(On\b[^\n]{0,200}(\n[^\n]{0,200})?wrote:[ \t]*$"  # Gmail / Apple Mail (may wrap)
    r"|-{2,}[ \t]*Original Message[ \t]*-{2,}"  # Outlook
    r"|_{8,}[ \t]*$"  # Outlook separator line
    r"|From:[^\n]*\n(Sent|Date):)",  # Outlook quoted header block
    re.M | re.I,
)
_SIGNOFF = re.compile(
    r"^(best|best regards|best wishes|all the best|kind regards|warm regards|regards|thanks|"
    r"thanks again|thanks a lot|thanks so much|thank you|many thanks|cheers|sincerely|br)"
    r"[ \t]*[,.!]*$",
    re.I,
)
_MOBILE_FOOTER = re.compile(r"^sent from my \w+.*$", re.I | re.M)


def clean_ticket(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Step ``receive``: parse ``From``/``Subject`` and clean the body of an e-mail ticket."""
    raw = str(inputs["ticket"])
    headers, body = _split_headers(raw)
    name, email = parseaddr(headers.get("from", ""))
    email = email.strip().lower()
    if "@" not in email:
        email = ""
    name = name.strip().strip('"')
    if "," in name:  # "Lopez, Maria"
        last, _, first = name.partition(",")
        name = f"{first.strip()} {last.strip()}".strip()
    return {
        "email": email,
        "name": name,
        "greeting_name": name.split()[0] if name else "there",
        "subject": _normalize(headers.get("subject", "")) or "(no subject)",
        "body": clean_body(body),
    }


def _split_headers(raw: str) -> tuple[dict[str, str], str]:
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headers: dict[str, str] = {}
    i = 0
    while i < len(lines):
        match = _HEADER.match(lines[i].strip())
        if not match or match.group(1).lower() not in _HEADER_KEYS:
            break
        headers.setdefault(match.group(1).lower(), match.group(2).strip())
        i += 1
    return headers, "\n".join(lines[i:])


def clean_body(body: str) -> str:
    """Strip HTML, quoted replies, signatures and mobile footers; normalize whitespace."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if _HTML_HINT.search(text):
        text = _strip_html(text)
    quote = _QUOTE_START.search(text)
    if quote:
        text = text[: quote.start()]
    lines = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    lines = _drop_signature(lines)
    text = _MOBILE_FOOTER.sub("", "\n".join(lines))
    return _normalize(text)


def _strip_html(text: str) -> str:
    text = re.sub(r"<(style|script|head)\b.*?</\1\s*>", "", text, flags=re.I | re.S)
    # Mail clients mark signatures and quoted mail; everything from there on is not the ticket.
    text = re.split(
        r"<(?:div|span|table)[^>]*class=\"[^\"]*(?:signature|gmail_quote)[^\"]*\"|<blockquote\b",
        text,
        maxsplit=1,
        flags=re.I,
    )[0]
    text = re.sub(r"<br\s*/?>", "\n", text, flags=re.I)
    text = re.sub(r"</(p|div|tr|li|h[1-6]|table)\s*>", "\n", text, flags=re.I)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text)


def _drop_signature(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped in {"--", "-- "} or line == "-- ":
            return lines[:i]
        if _SIGNOFF.match(stripped) and len([x for x in lines[i + 1 :] if x.strip()]) <= 6:
            return lines[:i]
    return lines


def _normalize(text: str) -> str:
    text = text.replace("\xa0", " ").replace("\t", " ")
    lines = [re.sub(r" {2,}", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------------------------
# Steps 2 and 3: lookup_customer, recent_tickets
# ---------------------------------------------------------------------------------------------


def lookup_customer(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Step ``lookup_customer``: the sender's account, plan and status, or ``found: false``.

    ``greeting_name`` is always there: the customer's first name from the record, else from the
    ``From`` header, else ``"there"``, so a prompt can always say ``Hi {{ ... }}``.
    """
    ticket = inputs["receive"]
    email = str(ticket.get("email") or "")
    unknown = {
        "found": False,
        "email": email,
        "greeting_name": ticket.get("greeting_name", "there"),
    }
    if not email:
        return unknown
    with connect() as con:
        row = con.execute(
            "SELECT account_id, name, email, plan, status, created_at FROM customers "
            "WHERE email = ?",
            (email,),
        ).fetchone()
    if row is None:
        return unknown
    return {
        "found": True,
        "account_id": row["account_id"],
        "name": row["name"],
        "greeting_name": str(row["name"]).split()[0],
        "email": row["email"],
        "plan": row["plan"],
        "status": row["status"],
        "customer_since": row["created_at"],
    }


def recent_tickets(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Step ``recent_tickets``: the customer's latest tickets, newest first (empty if unknown)."""
    customer = inputs["lookup_customer"]
    if not customer.get("found"):
        return []
    with connect() as con:
        rows = con.execute(
            "SELECT t.id, t.created_at, t.subject, t.category, t.status, t.summary "
            "FROM tickets t JOIN customers c ON c.id = t.customer_id "
            "WHERE c.account_id = ? ORDER BY t.created_at DESC LIMIT ?",
            (customer["account_id"], RECENT_LIMIT),
        ).fetchall()
    return [
        {
            "ticket": f"T-{row['id']}",
            "date": str(row["created_at"])[:10],
            "subject": row["subject"],
            "category": row["category"],
            "status": row["status"],
            "summary": row["summary"],
        }
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------
# Step 10: send_or_escalate
# ---------------------------------------------------------------------------------------------


def send_or_escalate(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Step ``send_or_escalate``: send the draft, or hand the case to a human with the reasons.

    Deterministic gates on top of the model's judgment ("when in doubt, route up"): an unclear
    escalation answer, a policy check that did not PASS, a draft that promises money, and an
    unknown sender asking about an account all escalate.
    """
    ticket = inputs["receive"]
    customer = inputs["lookup_customer"]
    draft = str(inputs.get("draft_reply") or "")
    reasons = _escalation_reasons(inputs, draft)
    account_id = customer.get("account_id") if customer.get("found") else None
    if reasons:
        row_id = _insert(
            "escalations",
            {
                "created_at": _now(),
                "from_email": ticket["email"] or "(unknown)",
                "account_id": account_id,
                "subject": ticket["subject"],
                "reasons": json.dumps(reasons),
                "draft": draft,
                "ticket": ticket["body"],
            },
        )
        return {"action": "escalate", "escalation_id": row_id, "reasons": reasons}
    subject = ticket["subject"]
    row_id = _insert(
        "outbox",
        {
            "created_at": _now(),
            "to_email": ticket["email"],
            "account_id": account_id,
            "subject": subject if subject.lower().startswith("re:") else f"Re: {subject}",
            "body": draft,
        },
    )
    return {"action": "send", "outbox_id": row_id, "to": ticket["email"]}


def _escalation_reasons(inputs: Mapping[str, Any], draft: str) -> list[str]:
    reasons: list[str] = []
    decision = str(inputs.get("decide_escalation") or "")
    escalate = parse_yes_no(decision)
    if escalate is None:
        reasons.append("the escalation decision was unclear")
    elif escalate:
        reasons.append(f"decide_escalation: {_first_line(decision, 'Reason') or 'yes'}")
    verdict = parse_pass_fail(str(inputs.get("policy_check") or ""))
    if verdict is not True:
        reasons.append("policy check " + ("failed" if verdict is False else "was unclear"))
    if not draft.strip():
        reasons.append("no draft reply")
    elif _PROMISE.search(draft):
        reasons.append("the draft promises a refund or credit")
    if not inputs["receive"].get("email"):
        reasons.append("no sender address")
    elif not inputs["lookup_customer"].get("found") and _category(inputs) == "account":
        reasons.append("unknown sender asks about an account: identity not verified")
    return reasons


def parse_yes_no(text: str) -> bool | None:
    """``ESCALATE: yes`` / ``no`` (or the first yes/no word) as a bool; None when absent."""
    match = re.search(r"escalat\w*\W{0,3}(yes|no)\b", text, re.I) or re.search(
        r"\b(yes|no)\b", text, re.I
    )
    return None if match is None else match.group(1).lower() == "yes"


def parse_pass_fail(text: str) -> bool | None:
    """The first PASS or FAIL in a policy verdict as a bool; None when neither appears."""
    match = re.search(r"\b(pass|fail)", text, re.I)
    return None if match is None else match.group(1).lower() == "pass"


def _category(inputs: Mapping[str, Any]) -> str | None:
    match = re.search(r"billing|technical|account", str(inputs.get("categorize") or ""), re.I)
    return match.group(0).lower() if match else None


def _first_line(text: str, label: str) -> str:
    for line in text.splitlines():
        if line.strip().lower().startswith(label.lower()):
            return line.strip()[:200]
    return next((line.strip()[:200] for line in text.splitlines() if line.strip()), "")


# ---------------------------------------------------------------------------------------------
# python: checks for draft_reply
# ---------------------------------------------------------------------------------------------

_PROMISE = re.compile(
    r"\b(we|i)\s*(will|'ll|’ll|shall|are going to|am going to)\s+(definitely\s+|now\s+|immediately\s+)?"
    r"(issue\s+(you\s+)?(a\s+|the\s+)?(full\s+)?(refund|credit)|refund|credit|reimburse|compensate)"
    r"|\byou will (get|receive) (a |your )?(full )?(refund|credit|money back)"
    r"|\bguarantee\w*\s+(you\s+)?(a\s+)?(full\s+)?refund",
    re.I,
)
_FACT = re.compile(r"\b[A-Z]{2,5}-\d[\d-]{2,}\b")
_TOPICS = ("order", "invoice", "charge", "payment", "billing", "account", "plan", "seat", "trial",
           "login", "password", "sso", "2fa", "export", "import", "webhook", "api", "dashboard",
           "audit", "suspen", "outage", "app")  # fmt: skip


def no_refund_promise(text: str) -> bool | tuple[bool, str]:
    """True unless the text promises a refund, credit or compensation (only billing may)."""
    match = _PROMISE.search(text)
    return True if match is None else (False, f"promises money: {match.group(0)!r}")


def reply_mentions_facts(text: str) -> bool | tuple[bool, str]:
    """True when the reply names something concrete: an ID (``ORD-88213``) or a topic word.

    A check sees only the step's own output, so this cannot compare against the ticket; it
    catches the generic "Thanks for reaching out, we'll look into it" reply.
    """
    if _FACT.search(text):
        return True
    lowered = text.lower()
    if any(topic in lowered for topic in _TOPICS):
        return True
    return False, "names no order, invoice or account detail"
