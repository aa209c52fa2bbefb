"""A project's calendar: which days are its partitions, and what to say about a day that is not.

A partition is a UTC day from the project's `partitions_start` to yesterday, the latest complete
day (today becomes a partition at midnight UTC). Every "is this one of the project's days?" of
the platform (upload, history import, backfill, a run launched for a day, the landing-zone
sensor) asks this object, so the rule and its messages live here once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

ONE_DAY = dt.timedelta(days=1)


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


def latest_complete_day(moment: dt.datetime) -> str:
    """The last UTC day that has fully ended at `moment`."""
    return (moment.astimezone(dt.UTC).date() - ONE_DAY).isoformat()


@dataclass(frozen=True)
class ProjectCalendar:
    start: dt.date
    project_file: str = "the project's project.yaml"

    def last(self, today: dt.date | None = None) -> dt.date:
        """Yesterday (UTC): the newest partition."""
        return (today or today_utc()) - ONE_DAY

    def is_partition(self, day: str, today: dt.date | None = None) -> bool:
        try:
            return self.start <= parse_day(day) <= self.last(today)
        except ValueError:
            return False

    def before_start(self, day: str) -> str:
        """What to do about data of a day before the first partition."""
        return (
            f"{day} is before the first partition ({self.start.isoformat()}); "
            f"set partitions_start: {day} (or earlier) in {self.project_file} to ingest it"
        )

    def not_a_partition(self, day: str, today: dt.date | None = None) -> str:
        """Why `day` is not a partition (it is not a date, or it is outside the range), and the fix."""
        try:
            parsed = parse_day(day)
        except ValueError as error:
            return str(error)
        if parsed < self.start:
            return self.before_start(day)
        last = self.last(today)
        return (
            f"{day} is not a partition yet: days run from {self.start.isoformat()} to {last.isoformat()} "
            "(yesterday, UTC; a day becomes a partition at midnight after it ends)"
        )

    def upload_note(self, day: str, today: dt.date | None = None) -> str | None:
        """Refuse data for a day that can never be a partition; a note for today's (a partition from midnight)."""
        parsed, today = parse_day(day), today or today_utc()
        if parsed < self.start:
            raise ValueError(self.before_start(day))
        if parsed > today:
            raise ValueError(f"{day} is in the future (today is {today.isoformat()} UTC); check the date")
        if parsed == today:
            return f"{day} is today: it becomes a partition at midnight UTC, and the landing-zone sensor ingests it"
        return None
