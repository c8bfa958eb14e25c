from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from streamwise.store.dates import MonotonicClock, parse_bound, to_js_iso, utc_now


def test_dates_are_written_like_javascript_to_iso_string() -> None:
    moment = datetime(2024, 1, 1, 9, 5, 3, 7_999, tzinfo=UTC)
    assert to_js_iso(moment) == "2024-01-01T09:05:03.007Z"


def test_dates_in_other_zones_are_written_in_utc() -> None:
    moment = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert to_js_iso(moment) == "2023-12-31T23:00:00.000Z"


def test_now_has_millisecond_precision_and_utc_zone() -> None:
    now = utc_now()
    assert now.tzinfo is UTC
    assert now.microsecond % 1000 == 0


def test_a_bare_date_covers_the_whole_day() -> None:
    assert parse_bound("2024-01-31", end=False, name="startDate") == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_bound("2024-01-31", end=True, name="endDate") == datetime(
        2024, 1, 31, 23, 59, 59, 999_000, tzinfo=UTC
    )
    assert parse_bound(date(2024, 1, 31), end=True, name="endDate") == datetime(
        2024, 1, 31, 23, 59, 59, 999_000, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T10:00:00.000Z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T10:00:00Z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T12:00:00+02:00", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T10:00:00", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        (" 2024-01-31T10:00 ", datetime(2024, 1, 31, 10, tzinfo=UTC)),
    ],
)
def test_date_times_are_taken_as_given_and_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_bound(text, end=True, name="endDate") == expected


def test_naive_datetimes_are_utc() -> None:
    assert parse_bound(datetime(2024, 1, 31, 10), end=False, name="startDate") == datetime(
        2024, 1, 31, 10, tzinfo=UTC
    )


def test_no_bound_is_none() -> None:
    assert parse_bound(None, end=False, name="startDate") is None


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "31/01/2024", ""])
def test_unreadable_dates_name_the_filter(text: str) -> None:
    with pytest.raises(ValueError, match="startDate"):
        parse_bound(text, end=False, name="startDate")


def test_the_clock_never_repeats_or_goes_back() -> None:
    clock = MonotonicClock()
    ticks = [clock.tick() for _ in range(500)]
    assert all(later > earlier for earlier, later in itertools.pairwise(ticks))
    assert all(tick.microsecond % 1000 == 0 for tick in ticks)
