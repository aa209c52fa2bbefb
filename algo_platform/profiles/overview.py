"""The data page's figures, from a project's rollup (or one day of it): small frames, one per chart.

Everything here is arithmetic on counts the ingest stored; nothing reads events. Per-day series
cover the whole history; the user and item sections give what per-day counts cannot: each user's
first day (new vs returning), weekly cohorts, and the long tail of events per user and per item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from algo_platform.profiles.compute import QUALITY_DIMENSIONS, WEEKDAYS

# Weekly cohorts shown: the latest ones, each followed this many weeks.
COHORTS = 16
COHORT_WEEKS = 12
# A long tail of a million users is drawn through this many ranks (log-spaced): the shape, not every point.
TAIL_POINTS = 400
# Drift compares a day's shares with the previous day's when both hold at least this many events.
DRIFT_MIN_EVENTS = 200
DRIFT_SECTIONS = ("event_type", "watch_ratio")
SEQUENCE_BINS = (1, 2, 3, 5, 9, 17, 33, 65, 129, 257, 513, 1025)


def gini(counts: np.ndarray) -> float:
    """0 when every user (item) has as many events, towards 1 when a few hold them all."""
    if counts.size == 0 or counts.sum() == 0:
        return 0.0
    ordered = np.sort(counts.astype("float64"))
    n = ordered.size
    cumulative = np.cumsum(ordered)
    return float((n + 1 - 2 * (cumulative.sum() / cumulative[-1])) / n)


@dataclass
class Overview:
    """What the page draws. Frames are small: per day, per category, or a few hundred tail points."""

    days: int
    first_day: str | None
    last_day: str | None
    totals: dict[str, float]
    daily: pl.DataFrame  # day, events, users, items
    drops: pl.DataFrame  # day (partition start), landed, then one column per drop reason
    quarantined: pl.DataFrame  # day, file, reason
    quality: pl.DataFrame  # day, quality_score, accuracy, completeness, relevance, timeliness
    drift: pl.DataFrame  # day, one PSI column per compared section
    categories: dict[str, pl.DataFrame] = field(default_factory=dict)  # section -> key, events
    hour_weekday: pl.DataFrame | None = None  # weekday, hour, events
    tails: dict[str, pl.DataFrame] = field(default_factory=dict)  # user/item -> rank, events
    ginis: dict[str, float] = field(default_factory=dict)
    new_returning: pl.DataFrame | None = None  # day, new, returning
    cohorts: pl.DataFrame | None = None  # cohort (week), week offset, share
    sequence_lengths: pl.DataFrame | None = None  # bin, users


def _section(table: pl.DataFrame, name: str) -> pl.DataFrame:
    return table.filter(pl.col("section") == name)


def _per_key(table: pl.DataFrame, section: str) -> pl.DataFrame:
    return (
        _section(table, section)
        .group_by("key")
        .agg(pl.col("value").sum().alias("events"))
        .sort("events", descending=True)
    )


def _wide(table: pl.DataFrame, section: str, keys: list[str] | None = None) -> pl.DataFrame:
    """day × key of a section's values (keys in order, absent ones as 0)."""
    rows = _section(table, section).group_by("day", "key").agg(pl.col("value").sum())
    if rows.is_empty():
        return pl.DataFrame(
            {"day": [], **{k: [] for k in keys or []}}, schema={"day": pl.Date, **dict.fromkeys(keys or [], pl.Float64)}
        )
    wide = rows.pivot(on="key", index="day", values="value").sort("day")
    missing = [k for k in keys or [] if k not in wide.columns]
    return wide.with_columns([pl.lit(0.0).alias(k) for k in missing]).fill_null(0.0)


def _tail(per_id: pl.DataFrame) -> pl.DataFrame:
    """Events by rank (1 = the busiest), thinned to log-spaced ranks: the long tail's shape."""
    counts = per_id.get_column("events").sort(descending=True).to_numpy()
    if counts.size == 0:
        return pl.DataFrame({"rank": [], "events": []}, schema={"rank": pl.Int64, "events": pl.Float64})
    ranks = np.unique(np.geomspace(1, counts.size, num=min(TAIL_POINTS, counts.size)).round().astype("int64"))
    return pl.DataFrame({"rank": ranks, "events": counts[ranks - 1]})


def _psi(shares: np.ndarray, previous: np.ndarray) -> np.ndarray:
    epsilon = 1e-4
    a, e = np.maximum(shares, epsilon), np.maximum(previous, epsilon)
    return ((a - e) * np.log(a / e)).sum(axis=1)


def _drift(table: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    """PSI of each day's event-type and watch-ratio mix against the previous day with events."""
    result = daily.select("day", "events")
    for section in DRIFT_SECTIONS:
        wide = _wide(table, section)
        if wide.width < 2:
            continue
        wide = result.select("day").join(wide, on="day", how="left").fill_null(0.0)
        counts = wide.drop("day").to_numpy()
        sums = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)
        psi = np.full(len(counts), np.nan)
        psi[1:] = _psi(shares[1:], shares[:-1])
        enough = sums[:, 0] >= DRIFT_MIN_EVENTS
        psi[1:][~(enough[1:] & enough[:-1])] = np.nan
        result = result.with_columns(pl.Series(section, psi))
    return result.drop("events")


def _behaviour(users: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """New vs returning users per day, weekly retention cohorts, and events per user as sequence lengths."""
    first = users.group_by("id").agg(pl.col("day").min().alias("first_day"))
    active = users.select("id", "day").unique().join(first, on="id")
    new_returning = (
        active.group_by("day")
        .agg((pl.col("day") == pl.col("first_day")).sum().alias("new"), pl.len().alias("active"))
        .with_columns((pl.col("active") - pl.col("new")).alias("returning"))
        .select("day", "new", "returning")
        .sort("day")
    )
    weekly = active.select(
        "id",
        pl.col("first_day").dt.truncate("1w").alias("cohort"),
        pl.col("day").dt.truncate("1w").alias("week"),
    ).unique()
    weekly = weekly.with_columns(((pl.col("week") - pl.col("cohort")).dt.total_days() // 7).alias("offset"))
    latest = weekly.get_column("cohort").unique().sort().tail(COHORTS)
    sizes = weekly.filter(pl.col("offset") == 0).group_by("cohort").agg(pl.len().alias("size"))
    cohorts = (
        weekly.filter(pl.col("cohort").is_in(latest.implode()) & (pl.col("offset") <= COHORT_WEEKS))
        .group_by("cohort", "offset")
        .agg(pl.len().alias("users"))
        .join(sizes, on="cohort")
        .with_columns((pl.col("users") / pl.col("size")).alias("share"))
        .sort("cohort", "offset")
    )
    per_user = users.group_by("id").agg(pl.col("value").sum().alias("events"))
    edges = [*SEQUENCE_BINS, math.inf]
    labels = [f"{low}" if high - low == 1 else f"{low}-{int(high) - 1}" if high != math.inf else f"{low}+"
              for low, high in zip(edges[:-1], edges[1:], strict=True)]  # fmt: skip
    which = np.searchsorted(np.array(SEQUENCE_BINS), per_user.get_column("events").to_numpy(), side="right") - 1
    counts = np.bincount(which.clip(0), minlength=len(labels))
    sequence_lengths = pl.DataFrame({"events": labels, "users": counts[: len(labels)]})
    return new_returning, cohorts, sequence_lengths


def overview(table: pl.DataFrame, day: str | None = None) -> Overview:
    """The page's figures for the rollup `table`, or for one `day` of it (its first users come from the whole)."""
    whole = table
    if day is not None:
        table = table.filter(pl.col("day") == pl.lit(day).str.to_date())
    users_all = _section(whole, "user").select("id", "day", "value")
    users = _section(table, "user").select("id", "day", "value")
    items = _section(table, "item").select("id", "day", "value")
    daily = (
        _section(table, "events").group_by("day").agg(pl.col("value").sum().alias("events"))
        .join(users.group_by("day").agg(pl.len().alias("users")), on="day", how="left")
        .join(items.group_by("day").agg(pl.len().alias("items")), on="day", how="left")
        .fill_null(0).sort("day")
    )  # fmt: skip
    landed = _section(table, "events").group_by("partition").agg(pl.col("value").sum().alias("landed"))
    drop_wide = _wide(table, "dropped")
    starts = table.group_by("partition").agg(pl.col("day").min().alias("day"))
    drops = starts.join(landed, on="partition", how="left").fill_null(0.0).drop("partition")
    drops = drops.join(drop_wide, on="day", how="left").fill_null(0.0).sort("day")
    quarantined = _section(table, "quarantined").select("day", pl.col("key").alias("file"),
                                                        pl.col("detail").alias("reason")).sort("day")  # fmt: skip
    quality = _wide(table, "quality", list(QUALITY_DIMENSIONS)).select("day", *QUALITY_DIMENSIONS)
    categories = {
        section: _per_key(table, section)
        for section in sorted(set(table.get_column("section").unique().to_list()))
        if section in ("event_type", "watch_ratio", "device", "region") or section.startswith("extra:")
    }
    hours = _per_key(table, "hour_weekday")
    hour_weekday = hours.select(
        pl.col("key").str.split("-").list.get(0).cast(pl.Int32).alias("weekday"),
        pl.col("key").str.split("-").list.get(1).cast(pl.Int32).alias("hour"),
        "events",
    )
    per_user = users.group_by("id").agg(pl.col("value").sum().alias("events"))
    per_item = items.group_by("id").agg(pl.col("value").sum().alias("events"))
    new_returning, cohorts, sequence_lengths = _behaviour(users_all)
    if day is not None:
        new_returning = new_returning.filter(pl.col("day") == pl.lit(day).str.to_date())
        _, _, sequence_lengths = _behaviour(users)
        cohorts = None
    days = daily.height
    return Overview(
        days=days,
        first_day=str(daily["day"][0]) if days else None,
        last_day=str(daily["day"][-1]) if days else None,
        totals={
            "events": float(daily["events"].sum()) if days else 0.0,
            "rows_in": float(_section(table, "rows_in")["value"].sum()),
            "dropped": float(_section(table, "dropped")["value"].sum()),
            "users": float(per_user.height),
            "items": float(per_item.height),
            "files_quarantined": float(quarantined.height),
        },
        daily=daily,
        drops=drops,
        quarantined=quarantined,
        quality=quality,
        drift=_drift(table, daily),
        categories=categories,
        hour_weekday=hour_weekday,
        tails={"user": _tail(per_user), "item": _tail(per_item)},
        ginis={"user": gini(per_user["events"].to_numpy()), "item": gini(per_item["events"].to_numpy())},
        new_returning=new_returning,
        cohorts=cohorts,
        sequence_lengths=sequence_lengths,
    )


__all__ = ["WEEKDAYS", "Overview", "gini", "overview"]
