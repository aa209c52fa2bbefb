"""Data-quality arithmetic that needs no Great Expectations: rules as data, the quality score,
distribution profiles and drift (population stability index)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from algo_platform.schema import EVENT_TYPES, REQUIRED_COLUMNS


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite. `expectation` is a GX 1.x expectation class name; `hard`
    rules fail the check with ERROR severity (blocking downstream), soft ones with WARN."""

    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    hard: bool = True

    def describe(self) -> str:
        column = self.kwargs.get("column")
        return f"{self.expectation}({column})" if column else self.expectation


def hard(expectation: str, **kwargs: Any) -> Rule:
    return Rule(expectation, kwargs, hard=True)


def soft(expectation: str, **kwargs: Any) -> Rule:
    return Rule(expectation, kwargs, hard=False)


# Clock skew tolerated before an event counts as "from the future".
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


def day_bounds(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)


def quality_dimensions(
    events: pd.DataFrame,
    day: dt.date,
    now: dt.datetime,
    allowed_lateness: dt.timedelta,
    colliding_rows: np.ndarray | None = None,
) -> dict[str, float]:
    """quality_score = accuracy × completeness × relevance × timeliness, each in [0, 1].

    accuracy: rows whose values satisfy the range rules (watch time >= 0, duration > 0) and whose
    event_id no earlier row holds with other content (`colliding_rows`, positions);
    completeness: share of required fields that are non-null;
    relevance: rows with a known event type and positive ids;
    timeliness: rows whose timestamp is in the day, or up to `allowed_lateness` before it
    (late arrivals), and not in the future.
    """
    rows = len(events)
    if rows == 0:  # a day without events has no defects
        return {"accuracy": 1.0, "completeness": 1.0, "relevance": 1.0, "timeliness": 1.0, "quality_score": 1.0}
    watch, duration = events["watch_ms"], events["item_duration_ms"]
    accurate = ((watch.isna() | (watch >= 0)) & (duration.isna() | (duration > 0))).fillna(False).to_numpy(bool)
    if colliding_rows is not None:
        accurate[colliding_rows] = False
    completeness = 1.0 - float(events[list(REQUIRED_COLUMNS)].isna().to_numpy().sum()) / (rows * len(REQUIRED_COLUMNS))
    event_type = events["event_type"].astype("string").str.strip().str.lower()
    relevant = (
        (event_type.isna() | event_type.isin(EVENT_TYPES))
        & (events["user_id"].isna() | (events["user_id"] > 0))
        & (events["item_id"].isna() | (events["item_id"] > 0))
    )
    start, end = day_bounds(day)
    ts = events["ts"]
    timely = (ts >= start - pd.Timedelta(allowed_lateness)) & (ts < end) & (ts <= pd.Timestamp(now) + FUTURE_TOLERANCE)
    dims = {
        "accuracy": float(accurate.mean()),
        "completeness": completeness,
        "relevance": float(relevant.fillna(False).mean()),
        "timeliness": float(timely.fillna(False).mean()),
    }
    dims["quality_score"] = math.prod(dims.values())
    return dims


# Fixed bins, so profiles of different days are comparable.
WATCH_RATIO_BINS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, np.inf]
EVENTS_PER_USER_BINS = [1, 2, 3, 5, 9, 17, 33, 65, np.inf]


def distribution_profile(events: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Shares per category/bin of the columns the drift check compares across days."""
    type_shares = events["event_type"].astype("string").value_counts(normalize=True)
    ratio = (events["watch_ms"].astype("Float64") / events["item_duration_ms"].astype("Float64")).dropna()
    ratio_bins = pd.cut(ratio.astype("float64"), WATCH_RATIO_BINS, right=False).value_counts(normalize=True, sort=False)
    per_user = events.groupby("user_id").size()
    user_bins = pd.cut(per_user, EVENTS_PER_USER_BINS, right=False).value_counts(normalize=True, sort=False)
    return {
        "event_type": {str(k): float(v) for k, v in type_shares.items()},
        "watch_ratio": {str(k): float(v) for k, v in ratio_bins.items()},
        "events_per_user": {str(k): float(v) for k, v in user_bins.items()},
    }


def population_stability_index(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """PSI = Σ (a − e) · ln(a / e) over the union of bins; < 0.1 stable, > 0.2 a real shift."""
    epsilon = 1e-4  # an empty bin on one side must not make the index infinite
    bins = set(expected) | set(actual)
    return float(
        sum(
            (max(actual.get(b, 0.0), epsilon) - max(expected.get(b, 0.0), epsilon))
            * math.log(max(actual.get(b, 0.0), epsilon) / max(expected.get(b, 0.0), epsilon))
            for b in bins
        )
    )
