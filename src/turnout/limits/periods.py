"""Budget periods in UTC: which period a moment falls in, and when it ends.

``day`` starts at midnight UTC, ``week`` on Monday, ``month`` on the 1st; ``total``
never resets. A period's id (``2026-12-01``, ``2026-W49``, ``2026-12``, ``total``)
names its spend in the shared state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from turnout.keys.model import Period


@dataclass(frozen=True, slots=True)
class Window:
    """One period: its id, and when it starts and ends (epoch seconds; None for
    ``total``)."""

    id: str
    ends_at: float | None
    starts_at: float | None = None


_SEEN: dict[tuple[Period, int], Window] = {}


def window_of(period: Period, now: float) -> Window:
    """The period ``now`` falls in (remembered per UTC minute: every period starts on one)."""
    minute = int(now // 60)
    window = _SEEN.get((period, minute))
    if window is None:
        if len(_SEEN) >= 64:
            _SEEN.clear()
        window = _SEEN[(period, minute)] = _window_of(period, now)
    return window


def _window_of(period: Period, now: float) -> Window:
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        following = day + timedelta(days=1)
        return Window(day.date().isoformat(), following.timestamp(), day.timestamp())
    if period is Period.WEEK:
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        following = start + timedelta(days=7)
        return Window(f"{year}-W{week:02d}", following.timestamp(), start.timestamp())
    if period is Period.MONTH:
        start = day.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return Window(start.strftime("%Y-%m"), following.timestamp(), start.timestamp())
    return Window("total", None)
