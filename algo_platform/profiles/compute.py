"""A partition's data profile: small, additive counts per day that the data page charts.

A profile is one long table, `PROFILE_SCHEMA`: (day, section, key, id, value, detail). Every value
is a count, so profiles of days add up to the profile of a range, and the page never reads events.
Sections, per day of the cleaned events:

    events                      events kept (key null)
    event_type / device / region   events per value (device and region: the commonest, then "other")
    watch_ratio                 events per watch-ratio bin (the drift check's bins)
    hour_weekday                events per "<weekday 0=Mon>-<hour>" of their timestamp
    extra:<column>              events per value of a declared extra column (numbers rounded to 2 digits)
    user / item                 events per user id / item id (`id`): the incremental tables' source

and per partition (on its first day), from what the ingest recorded:

    rows_in                     raw rows read
    dropped                     rows dropped, per reason (`key`)
    quality                     the raw day's quality score and its four dimensions (`key`)
    quarantined                 a quarantined landing file (`key`: the day/file, `detail`: the reason)
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence

import polars as pl
import pyarrow as pa

from algo_platform.quality.dimensions import WATCH_RATIO_BINS, bin_labels

PROFILE_SCHEMA = pa.schema(
    [
        ("day", pa.date32()),
        ("section", pa.string()),
        ("key", pa.string()),
        ("id", pa.int64()),
        ("value", pa.float64()),
        ("detail", pa.string()),
    ]
)
# Text columns with many values keep their commonest per day; the rest count as "other".
TOP_VALUES = 20
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
QUALITY_DIMENSIONS = ("quality_score", "accuracy", "completeness", "relevance", "timeliness")


def _rows(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (day, section and any of key, id, value, detail) in the profile's column order and types."""
    columns = []
    for field in PROFILE_SCHEMA:
        name, dtype = field.name, pl.from_arrow(pa.array([], field.type)).dtype
        columns.append(pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name))
    return frame.select(columns)


def _counted(events: pl.LazyFrame, section: str, key: pl.Expr) -> pl.LazyFrame:
    """Events per day and value of `key`; the key becomes text after counting (never row by row)."""
    return (
        events.group_by("day", key.alias("key"))
        .agg(pl.len().cast(pl.Float64).alias("value"))
        .with_columns(pl.col("key").cast(pl.String), pl.lit(section).alias("section"))
    )


def _commonest(events: pl.LazyFrame, section: str, column: str) -> pl.LazyFrame:
    """Events per value of a text column, the day's `TOP_VALUES` commonest by name, the rest as "other"."""
    counts = _counted(events, section, pl.col(column)).with_columns(pl.col("key").fill_null("(none)"))
    ranked = counts.with_columns(pl.col("value").rank("ordinal", descending=True).over("day").alias("_rank"))
    key = pl.when(pl.col("_rank") <= TOP_VALUES).then(pl.col("key")).otherwise(pl.lit("other"))
    return ranked.group_by("day", "section", key.alias("key")).agg(pl.col("value").sum())


def _hour_weekday(events: pl.LazyFrame) -> pl.LazyFrame:
    hours = events.group_by(
        "day", (pl.col("ts").dt.weekday() - 1).alias("weekday"), pl.col("ts").dt.hour().alias("hour")
    )
    return hours.agg(pl.len().cast(pl.Float64).alias("value")).select(
        "day", pl.format("{}-{}", "weekday", "hour").alias("key"), "value", pl.lit("hour_weekday").alias("section")
    )


def _watch_ratio_bin() -> pl.Expr:
    ratio = (pl.col("watch_ms") / pl.col("item_duration_ms")).cast(pl.Float64)
    which = None
    for (low, high), label in zip(itertools.pairwise(WATCH_RATIO_BINS), bin_labels(WATCH_RATIO_BINS), strict=True):
        inside = (ratio >= low) & (ratio < high)
        which = (pl.when(inside) if which is None else which.when(inside)).then(pl.lit(label))
    return which.otherwise(pl.lit(None, pl.String))


def _per_id(events: pl.LazyFrame, section: str, column: str) -> pl.LazyFrame:
    return (
        events.group_by("day", pl.col(column).alias("id"))
        .agg(pl.len().cast(pl.Float64).alias("value"))
        .with_columns(pl.lit(section).alias("section"))
    )


def profile_events(events: pl.LazyFrame, extra_columns: Mapping[str, str] | None = None) -> pa.Table:
    """The per-day sections of cleaned events (see the module docstring); days without events have no rows."""
    names = events.collect_schema().names()
    events = events.with_columns(pl.col("ts").dt.date().alias("day"))
    parts = [
        events.group_by("day").agg(pl.len().cast(pl.Float64).alias("value")).with_columns(section=pl.lit("events")),
        _counted(events, "event_type", pl.col("event_type")),
        _hour_weekday(events),
        _per_id(events, "user", "user_id"),
        _per_id(events, "item", "item_id"),
    ]
    if {"watch_ms", "item_duration_ms"} <= set(names):
        parts.append(_counted(events.filter(_watch_ratio_bin().is_not_null()), "watch_ratio", _watch_ratio_bin()))
    parts += [_commonest(events, column, column) for column in ("device", "region") if column in names]
    for column, kind in (extra_columns or {}).items():
        if column not in names:
            continue
        if kind == "string":
            parts.append(_commonest(events, f"extra:{column}", column))
        else:
            value = pl.col(column).cast(pl.Float64)
            parts.append(_counted(events.filter(value.is_finite()), f"extra:{column}", value.round_sig_figs(2)))
    frames = pl.collect_all(parts)
    return pl.concat([_rows(frame) for frame in frames], how="vertical").to_arrow().cast(PROFILE_SCHEMA)


def partition_rows(
    first_day: dt.date,
    rows_in: int | None,
    dropped: Mapping[str, int],
    quality: Mapping[str, float],
    quarantined: Sequence[tuple[str, str]],
) -> pa.Table:
    """The partition-level sections (module docstring), dated on the partition's first day."""
    rows: list[dict] = []
    if rows_in is not None:
        rows.append({"section": "rows_in", "value": float(rows_in)})
    rows += [{"section": "dropped", "key": reason, "value": float(n)} for reason, n in dropped.items() if n]
    rows += [{"section": "quality", "key": name, "value": float(quality[name])} for name in QUALITY_DIMENSIONS
             if quality.get(name) is not None]  # fmt: skip
    rows += [{"section": "quarantined", "key": name, "value": 1.0, "detail": reason} for name, reason in quarantined]
    for row in rows:
        row["day"] = first_day
    return pa.Table.from_pylist(rows, PROFILE_SCHEMA)


def profile_of(
    events: pl.LazyFrame,
    extra_columns: Mapping[str, str] | None,
    first_day: dt.date,
    rows_in: int | None = None,
    dropped: Mapping[str, int] | None = None,
    quality: Mapping[str, float] | None = None,
    quarantined: Sequence[tuple[str, str]] = (),
) -> pa.Table:
    """A partition's whole profile: its events' sections and what the ingest recorded about it."""
    recorded = partition_rows(first_day, rows_in, dropped or {}, quality or {}, quarantined)
    return pa.concat_tables([profile_events(events, extra_columns), recorded])
