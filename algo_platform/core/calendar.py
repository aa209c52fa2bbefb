"""A project's calendar: which periods are its partitions, and what to say about a date that is not.

A project chooses its partition grain (`data.partition`: day, week or month). A partition is one
UTC period, named by its first day (`2026-11-30` is the ISO week from Monday 30 November; `2026-11-01`
is November), from the period holding `partitions_start` to the latest complete one: yesterday
for days, last week for weeks, last month for months. The period still filling becomes a
partition when it ends; its landing files wait until then. Landing folders stay daily whatever
the grain. Every "is this one of the project's partitions?" of the platform (upload, history
import, backfill, a run launched for a partition, the landing-zone sensor) asks this object, so
the rule and its messages live here once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

ONE_DAY = dt.timedelta(days=1)
Grain = Literal["day", "week", "month"]
# How each grain's first day is named in messages.
_FIRST_DAY = {"day": "a day", "week": "a Monday (ISO weeks)", "month": "the first day of a month"}


def parse_day(day: str) -> dt.date:
    """`day` as a date if it is a real YYYY-MM-DD date; refused otherwise (including paths)."""
    try:
        parsed = dt.date.fromisoformat(day)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise ValueError(f"date {day!r} is not a calendar date in YYYY-MM-DD form, e.g. 2026-11-20")
    return parsed


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def period_start(day: dt.date, grain: Grain) -> dt.date:
    """The first day of the period holding `day`."""
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def period_end(start: dt.date, grain: Grain) -> dt.date:
    """The day after the period that begins on `start` (exclusive end)."""
    if grain == "week":
        return start + dt.timedelta(days=7)
    if grain == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start + ONE_DAY


@dataclass(frozen=True)
class Period:
    """One partition's span of days: `start` included, `end` excluded."""

    start: dt.date
    end: dt.date

    @property
    def key(self) -> str:
        return self.start.isoformat()

    @property
    def last_day(self) -> dt.date:
        return self.end - ONE_DAY

    @property
    def days(self) -> list[str]:
        return [(self.start + dt.timedelta(days=i)).isoformat() for i in range((self.end - self.start).days)]

    def __str__(self) -> str:
        if self.end - self.start == ONE_DAY:
            return self.key
        return f"{self.key}..{self.last_day.isoformat()}"


@dataclass(frozen=True)
class ProjectCalendar:
    start: dt.date
    project_file: str = "the project's project.yaml"
    grain: Grain = "day"

    @property
    def first(self) -> dt.date:
        """The first partition's first day: the start of the period holding `partitions_start`."""
        return period_start(self.start, self.grain)

    def period(self, key: str) -> Period:
        """The days of the partition named `key` (its first day)."""
        start = parse_day(key)
        return Period(start, period_end(start, self.grain))

    def period_of(self, day: str | dt.date) -> Period:
        """The partition that holds `day`."""
        start = period_start(parse_day(day) if isinstance(day, str) else day, self.grain)
        return Period(start, period_end(start, self.grain))

    def last(self, today: dt.date | None = None) -> dt.date:
        """The newest partition's first day: the latest period that has ended (yesterday for days)."""
        return period_start(period_start(today or today_utc(), self.grain) - ONE_DAY, self.grain)

    def latest_complete(self, moment: dt.datetime) -> str:
        """The newest partition at `moment` (the schedule trains on it)."""
        return self.last(moment.astimezone(dt.UTC).date()).isoformat()

    def is_partition(self, key: str, today: dt.date | None = None) -> bool:
        try:
            parsed = parse_day(key)
        except ValueError:
            return False
        return parsed == period_start(parsed, self.grain) and self.first <= parsed <= self.last(today)

    def before_start(self, day: str) -> str:
        """What to do about data of a day before the first partition."""
        return (
            f"{day} is before the first partition ({self.start.isoformat()}); "
            f"set partitions_start: {day} (or earlier) in {self.project_file} to ingest it"
        )

    def not_a_partition(self, key: str, today: dt.date | None = None) -> str:
        """Why `key` is not a partition (not a date, not a period's first day, or out of range), and the fix."""
        try:
            parsed = parse_day(key)
        except ValueError as error:
            return str(error)
        if parsed < self.first:
            return self.before_start(key)
        if parsed != period_start(parsed, self.grain):
            return (
                f"{key} is not a partition: partitions are {self.grain}s, each named by {_FIRST_DAY[self.grain]}; "
                f"{key} is in the partition {self.period_of(parsed).key}"
            )
        last = self.last(today)
        if self.grain == "day":
            return (
                f"{key} is not a partition yet: days run from {self.first.isoformat()} to {last.isoformat()} "
                "(yesterday, UTC; a day becomes a partition at midnight after it ends)"
            )
        return (
            f"{key} is not a partition yet: {self.grain}s run from {self.first.isoformat()} to {last.isoformat()} "
            f"(the {self.grain} still filling becomes a partition at midnight UTC after it ends, "
            f"on {period_end(parsed, self.grain).isoformat()})"
        )

    def partition_keys(self, first_day: str, last_day: str) -> list[str]:
        """The partitions that hold any day from `first_day` to `last_day`, each checked to be one."""
        keys, day = [], self.period_of(first_day).start
        while day <= parse_day(last_day):
            keys.append(day.isoformat())
            day = period_end(day, self.grain)
        for key in (keys[0], keys[-1]) if keys else ():
            if not self.is_partition(key):
                raise ValueError(self.not_a_partition(key))
        return keys

    def upload_note(self, day: str, today: dt.date | None = None) -> str | None:
        """Refuse data for a day that can never be a partition; a note for a day of the period still filling."""
        parsed, today = parse_day(day), today or today_utc()
        if parsed < self.start:
            raise ValueError(self.before_start(day))
        if parsed > today:
            raise ValueError(f"{day} is in the future (today is {today.isoformat()} UTC); check the date")
        if parsed == today and self.grain == "day":
            return f"{day} is today: it becomes a partition at midnight UTC, and the landing-zone sensor ingests it"
        period = self.period_of(parsed)
        if period.end > today:
            return (
                f"{day} is in the {self.grain} {period} that is still filling: it becomes a partition at midnight UTC "
                f"on {period.end.isoformat()}, and the landing-zone sensor ingests it then"
            )
        return None


def span_of(day: dt.date | Period) -> Period:
    """A partition's span: a Period as it is, a date as its one day."""
    return day if isinstance(day, Period) else Period(day, day + ONE_DAY)


def span_bounds(day: dt.date | Period) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants a partition's events lie in: its first midnight included, the one after its end excluded."""
    period = span_of(day)
    return dt.datetime.combine(period.start, dt.time(), dt.UTC), dt.datetime.combine(period.end, dt.time(), dt.UTC)


# Days a period holds at most (a month: 31), for sizing a window of days in periods.
_PERIOD_DAYS = {"day": 1, "week": 7, "month": 31}


def window_partitions(window_days: int, grain: Grain) -> int:
    """How many partitions a training window of `window_days` days spans: that many days, or the
    weeks or months those days fill, rounded up (a month counted as 31 days), and at least two:
    one to learn from, one held out."""
    return max(2, -(-window_days // _PERIOD_DAYS[grain]))
