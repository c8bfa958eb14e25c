"""Timestamps as Flowise shows them: UTC, millisecond precision, JavaScript's ISO-8601 text.

Stored dates are cut to whole milliseconds so that what a client reads back (`...T10:00:00.123Z`)
is exactly what is stored, and a date filter built from that text matches the row it came from.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, time, timedelta

MILLISECOND = timedelta(milliseconds=1)

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_END_OF_DAY = time(23, 59, 59, 999_000)


def utc_now() -> datetime:
    """The current UTC time, truncated to the millisecond."""
    return truncate_to_ms(datetime.now(UTC))


def truncate_to_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already, as SQLite hands them back."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_js_iso(value: datetime) -> str:
    """Format like JavaScript's `Date.prototype.toISOString()`, e.g. `2024-01-01T00:00:00.000Z`."""
    v = as_utc(value)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )


def parse_bound(value: str | datetime | date | None, *, end: bool, name: str) -> datetime | None:
    """Turn a `startDate`/`endDate` filter into an inclusive UTC bound.

    A bare date means the whole day, so `endDate=2024-01-31` keeps messages written at 18:00 that day.
    Times without an offset are UTC, like JavaScript's `new Date("2024-01-31T10:00:00Z")`.
    Raises `ValueError` naming the filter, which the API reports as a 400.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return _day_bound(value, end=end)
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            return _day_bound(date.fromisoformat(text), end=end)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be an ISO-8601 date or date-time, got {value!r}") from None
    try:
        return as_utc(moment)
    except OverflowError:  # within a day of the calendar's ends, its UTC time falls outside it
        return datetime.min.replace(tzinfo=UTC) if moment.year == 1 else datetime.max.replace(tzinfo=UTC)


def _day_bound(day: date, *, end: bool) -> datetime:
    return datetime.combine(day, _END_OF_DAY if end else time(0), tzinfo=UTC)


class MonotonicClock:
    """Hands out strictly increasing millisecond timestamps.

    Two rows written by this process never share a `createdDate`, so ordering by date alone keeps a
    user message before its answer on SQLite and PostgreSQL alike, without a sequence column. Under
    a burst of more than one write per millisecond the clock runs slightly ahead of wall time and
    catches up when the burst ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: datetime | None = None

    def tick(self) -> datetime:
        with self._lock:
            now = utc_now()
            if self._last is not None and now <= self._last:
                now = self._last + MILLISECOND
            self._last = now
            return now
