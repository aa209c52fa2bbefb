"""Data-quality arithmetic that needs no Great Expectations: rules as data, the quality score,
distribution profiles and drift (population stability index)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from algo_platform.core.calendar import Period, span_bounds
from algo_platform.core.schema import EVENT_TYPES, REQUIRED_COLUMNS

# Clock skew tolerated before an event counts as "from the future".
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


def day_bounds(day: dt.date | Period) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A partition's (a day's, or a week's or month's) first instant and the instant after it."""
    start, end = span_bounds(day)
    return pd.Timestamp(start), pd.Timestamp(end)


def as_polars(events: Any) -> pl.LazyFrame:
    """A day's events (polars, Arrow or pandas) as a polars lazy frame."""
    if isinstance(events, pl.LazyFrame):
        return events
    if isinstance(events, pd.DataFrame):
        return pl.from_pandas(events).lazy()
    return (events if isinstance(events, pl.DataFrame) else pl.from_arrow(events)).lazy()


def _share(condition: pl.Expr) -> pl.Expr:
    """The share of rows where `condition` holds (unknown counts as not holding)."""
    return condition.fill_null(False).mean()


def quality_dimensions(
    events: Any,
    day: dt.date | Period,
    now: dt.datetime,
    allowed_lateness: dt.timedelta,
    colliding_rows: Sequence[int] | np.ndarray | None = None,
) -> dict[str, float]:
    """quality_score = accuracy × completeness × relevance × timeliness, each in [0, 1].

    accuracy: rows whose values satisfy the range rules (watch time >= 0, duration > 0) and whose
    event_id no earlier row holds with other content (`colliding_rows`, positions);
    completeness: share of required fields that are non-null;
    relevance: rows with a known event type and positive ids;
    timeliness: rows whose timestamp is in the partition (a day, week or month), or up to `allowed_lateness` before it
    (late arrivals), and not in the future.

    One polars pass over `events` (a polars lazy frame, e.g. a Parquet scan, or a table in memory).
    """
    watch, duration, ts = pl.col("watch_ms"), pl.col("item_duration_ms"), pl.col("ts")
    accurate = (watch.is_null() | (watch >= 0)) & (duration.is_null() | (duration > 0))
    if colliding_rows is not None and len(colliding_rows):
        accurate = accurate & ~pl.int_range(pl.len()).is_in(pl.Series(colliding_rows, dtype=pl.Int64).implode())
    event_type = pl.col("event_type").cast(pl.String).str.strip_chars().str.to_lowercase()
    start, end = span_bounds(day)
    row = (
        as_polars(events)
        .select(
            pl.len().alias("rows"),
            _share(accurate).alias("accuracy"),
            pl.sum_horizontal(pl.col(c).null_count() for c in REQUIRED_COLUMNS).alias("nulls"),
            _share(
                (event_type.is_null() | event_type.is_in(EVENT_TYPES))
                & (pl.col("user_id").is_null() | (pl.col("user_id") > 0))
                & (pl.col("item_id").is_null() | (pl.col("item_id") > 0))
            ).alias("relevance"),
            _share((ts >= start - allowed_lateness) & (ts < end) & (ts <= now + FUTURE_TOLERANCE)).alias("timeliness"),
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    if row["rows"] == 0:  # a day without events has no defects
        return {"accuracy": 1.0, "completeness": 1.0, "relevance": 1.0, "timeliness": 1.0, "quality_score": 1.0}
    dims = {
        "accuracy": float(row["accuracy"]),
        "completeness": 1.0 - row["nulls"] / (row["rows"] * len(REQUIRED_COLUMNS)),
        "relevance": float(row["relevance"]),
        "timeliness": float(row["timeliness"]),
    }
    dims["quality_score"] = math.prod(dims.values())
    return dims


# Fixed bins, so profiles of different days are comparable.
WATCH_RATIO_BINS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, np.inf]
EVENTS_PER_USER_BINS = [1, 2, 3, 5, 9, 17, 33, 65, np.inf]


def bin_labels(bins: list[float]) -> list[str]:
    """The names of the [low, high) bins, as pandas labels `pd.cut(..., right=False)` (the profile's keys)."""
    return [str(label) for label in pd.cut(pd.Series([], dtype="float64"), bins, right=False).cat.categories]


def _bin_shares(values: pl.LazyFrame, bins: list[float]) -> dict[str, float]:
    """Shares of the one column of `values` per [low, high) bin (values outside every bin left out)."""
    value = pl.col(values.collect_schema().names()[0]).cast(pl.Float64)
    which = None
    for index, (low, high) in enumerate(itertools.pairwise(bins)):
        inside = (value >= low) & (value < high)
        which = (pl.when(inside) if which is None else which.when(inside)).then(pl.lit(index, pl.Int32))
    counts = values.select(which.alias("bin")).drop_nulls().group_by("bin").len()
    counts = dict(counts.collect(engine="streaming").iter_rows())
    total = sum(counts.values())
    return {label: (counts.get(index, 0) / total if total else 0.0) for index, label in enumerate(bin_labels(bins))}


def distribution_profile(events: Any) -> dict[str, dict[str, float]]:
    """Shares per category/bin of the columns the drift check compares across days."""
    events = as_polars(events)
    types = dict(
        events.select(pl.col("event_type").cast(pl.String))
        .drop_nulls()
        .group_by("event_type")
        .len()
        .collect()
        .iter_rows()
    )
    total = sum(types.values())
    ratio = events.select((pl.col("watch_ms") / pl.col("item_duration_ms")).alias("ratio")).drop_nulls()
    per_user = events.group_by("user_id").len().select("len")
    return {
        "event_type": {str(kind): count / total for kind, count in types.items()},
        "watch_ratio": _bin_shares(ratio, WATCH_RATIO_BINS),
        "events_per_user": _bin_shares(per_user, EVENTS_PER_USER_BINS),
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
