"""The data page's arithmetic on profiles: long tails, new and returning users, cohorts, drift."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from algo_platform.profiles.compute import profile_events
from algo_platform.profiles.overview import gini, overview


def _events(rows: list[tuple[int, int, str, str]]) -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "ts": [dt.datetime.fromisoformat(r[3]).replace(tzinfo=dt.UTC) for r in rows],
        }
    ).lazy()


def _rollup(events: pl.LazyFrame) -> pl.DataFrame:
    profile = pl.from_arrow(profile_events(events))
    return profile.with_columns(pl.col("day").cast(pl.String).alias("partition"))


def test_gini_is_zero_for_equal_use_and_near_one_when_one_holds_everything():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0] * 99 + [100])) == pytest.approx(0.99)
    assert gini(np.array([])) == 0.0


def test_new_and_returning_users_and_weekly_cohorts_come_from_each_users_first_day():
    rows = [
        (1, 10, "play", "2026-11-02T08:00:00"),  # Monday: users 1 and 2 are new
        (2, 11, "play", "2026-11-02T09:00:00"),
        (1, 10, "like", "2026-11-03T10:00:00"),  # user 1 returns, user 3 is new
        (3, 12, "play", "2026-11-03T11:00:00"),
        (1, 12, "play", "2026-11-10T12:00:00"),  # the next week: one of the first week's two returns
    ]
    figures = overview(_rollup(_events(rows)))
    by_day = {str(d): (n, r) for d, n, r in figures.new_returning.iter_rows()}
    assert by_day == {"2026-11-02": (2, 0), "2026-11-03": (1, 1), "2026-11-10": (0, 1)}
    cohort = figures.cohorts.filter(pl.col("cohort") == dt.date(2026, 11, 2))
    assert dict(zip(cohort["offset"], cohort["share"], strict=True)) == {0: 1.0, 1: pytest.approx(1 / 3)}
    assert figures.totals == {"events": 5.0, "rows_in": 0.0, "dropped": 0.0, "users": 3.0, "items": 3.0,
                              "files_quarantined": 0.0}  # fmt: skip
    # One day's view keeps the whole history's first days: user 1 returns on the 3rd.
    day = overview(_rollup(_events(rows)), "2026-11-03")
    assert day.new_returning.select("new", "returning").row(0) == (1, 1)


def test_drift_compares_days_with_enough_events_only():
    plays = [(u, 1, "play", "2026-11-02T08:00:00") for u in range(1, 301)]
    likes = [(u, 1, "like", "2026-11-03T08:00:00") for u in range(1, 301)]
    few = [(1, 1, "skip", "2026-11-04T08:00:00")]
    drift = overview(_rollup(_events(plays + likes + few))).drift
    psi = dict(zip(drift["day"].cast(pl.String), drift["event_type"], strict=True))
    assert np.isnan(psi["2026-11-02"]) and psi["2026-11-03"] > 1 and np.isnan(psi["2026-11-04"])
