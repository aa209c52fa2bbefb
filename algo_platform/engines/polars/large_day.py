"""A day larger than memory, cleaned Parquet to Parquet and summarised in parts by polars' streaming engine.

polars' sort and first-arrival dedup hold their whole input, so a day of hundreds of millions of
events is cleaned in parts that each fit, with the rules of `cleaning.py`:

1. one streaming pass counts the drop reasons and the valid rows, and finds their span of user ids;
2. dedup per bucket of event_id hashes: an id's rows all fall in one bucket, so each bucket
   finds its repeats (and which of them collide) exactly, holding a share of the ids;
3. the kept rows per range of user ids, sorted and appended to the output in user order, so the
   file is sorted by user and time as a day cleaned in memory is.

Rows keep their position in the raw file (ROW), which decides the first arrival and ties in the sort.

The features are computed the same way (`user_features_of_file`, `item_features_of_file`): users
in ranges of ids (the cleaned file is sorted by user, so each part reads only its row groups),
items in buckets of id hashes (each item's events fall in one bucket); only the item ranks need
every item, and are given last.
"""

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from algo_platform.core.calendar import Period
from algo_platform.core.schema import pandas_dtypes
from algo_platform.engines.polars.cleaning import (
    EVENT_CONTENT,
    FIRST,
    REASON,
    ROW,
    cleaned_rows,
    colliding_repeats,
    drop_counts,
    events_arrow,
    first_arrivals,
    with_drop_reason,
)
from algo_platform.engines.polars.features import item_aggregates, ranked_by_popularity, user_features

# Rows per part: a part's sort and the Arrow copy written from it stay within a few GiB.
ROWS_PER_PART = 10_000_000
# A day cleaned in memory peaks at about twice its size as read; a day of more rows than this is
# cleaned (and validated) in parts instead, whatever its size.
LARGEST_DAY_IN_MEMORY = 20_000_000
# User ids are counted in this many equal-width blocks; ranges of blocks make the parts.
USER_BLOCKS = 4096
STREAMING = "streaming"


def clean_file(
    raw_path: str | Path,
    cleaned_path: str | Path,
    day: dt.date | Period,
    now: dt.datetime,
    rows_per_part: int | None = None,
) -> dict[str, int]:
    """Clean the raw day at `raw_path` into `cleaned_path`; the dropped rows per reason."""
    rows_per_part = rows_per_part or ROWS_PER_PART
    typed = with_drop_reason(pl.scan_parquet(raw_path).with_row_index(ROW), day, now)
    valid = typed.filter(pl.col(REASON).is_null()).drop(REASON)
    reasons, span = pl.collect_all(
        [
            typed.group_by(REASON).len(),
            valid.select(
                pl.len().alias("rows"), pl.col("user_id").min().alias("low"), pl.col("user_id").max().alias("high")
            ),
        ],
        engine=STREAMING,
    )
    rows, low, high = span.row(0)
    parts = max(1, math.ceil(rows / rows_per_part))
    repeats, collisions = _repeats(valid, parts)
    firsts = valid.join(repeats.lazy(), on=ROW, how="anti").with_columns(pl.lit(True).alias(FIRST))
    schema = pq.read_schema(raw_path)
    with pq.ParquetWriter(cleaned_path, _cleaned_schema(firsts, schema), compression="zstd") as writer:
        for first_user, last_user in _user_ranges(valid, low, high, parts, rows):
            part = firsts.filter(pl.col("user_id").is_between(first_user, last_user, closed="left"))
            writer.write_table(events_arrow(cleaned_rows(part).collect(engine=STREAMING), schema))
    return drop_counts(reasons, repeats.height, collisions)


def _repeats(valid: pl.LazyFrame, buckets: int) -> tuple[pl.DataFrame, int]:
    """ROW of every valid row whose event_id an earlier valid row holds, and how many of those collide."""
    found, collisions = [], 0
    for bucket in range(buckets):
        rows = valid.select(ROW, "event_id", *EVENT_CONTENT)
        if buckets > 1:
            rows = rows.filter(pl.col("event_id").hash(seed=0) % buckets == bucket)
        flagged = first_arrivals(rows.sort(ROW)).collect(engine=STREAMING).lazy()
        found.append(flagged.filter(~pl.col(FIRST)).select(ROW).collect())
        collisions += colliding_repeats(flagged).select(pl.len()).collect().item()
    return pl.concat(found), collisions


def _user_ranges(
    valid: pl.LazyFrame, low: int | None, high: int | None, parts: int, rows: int
) -> list[tuple[int, int]]:
    """[first, last) user id ranges holding about `rows / parts` valid rows each, in user order."""
    if low is None:  # no valid row: one empty part, so the file has its columns
        return [(0, 0)]
    if parts == 1:
        return [(low, high + 1)]
    width = max(1, math.ceil((high - low + 1) / USER_BLOCKS))
    block = ((pl.col("user_id") - low) // width).alias("block")
    counts = valid.group_by(block).len().sort("block").collect(engine=STREAMING)
    bounds, filled, target = [low], 0, rows / parts
    for block_index, count in counts.iter_rows():
        filled += count
        if filled >= target * len(bounds) and len(bounds) < parts:
            bounds.append(low + (block_index + 1) * width)
    bounds.append(high + 1)
    return [(first, last) for first, last in zip(bounds, bounds[1:], strict=False) if last > first]


def _cleaned_schema(valid: pl.LazyFrame, raw_schema):
    """The Arrow schema of the cleaned file (from an empty part, cleaned as any other), read by
    pandas as a day cleaned in memory is."""
    schema = events_arrow(cleaned_rows(valid.head(0)).collect(), raw_schema).schema
    return schema.with_metadata(pandas_dtypes(schema, required_ids=True))


def _span(events: pl.LazyFrame, rows_per_part: int | None) -> tuple[int, int | None, int | None, int]:
    """Rows, lowest and highest user id, and the number of parts of a cleaned day."""
    rows_per_part = rows_per_part or ROWS_PER_PART
    span = events.select(pl.len(), pl.col("user_id").min().alias("low"), pl.col("user_id").max().alias("high"))
    rows, low, high = span.collect(engine=STREAMING).row(0)
    return rows, low, high, max(1, math.ceil(rows / rows_per_part))


def user_features_of_file(cleaned_path: str | Path, rows_per_part: int | None = None) -> pl.DataFrame:
    """Per-user features of a cleaned day, a range of user ids at a time (the file is sorted by
    user, so each range reads only its own row groups)."""
    events = pl.scan_parquet(cleaned_path)
    rows, low, high, parts = _span(events, rows_per_part)
    users = [
        user_features(events.filter(pl.col("user_id").is_between(first, last, closed="left"))).collect(engine=STREAMING)
        for first, last in _user_ranges(events, low, high, parts, rows)
    ]
    return pl.concat(users).sort("user_id")


def item_features_of_file(cleaned_path: str | Path, rows_per_part: int | None = None) -> pl.DataFrame:
    """Per-item features of a cleaned day, a bucket of item-id hashes at a time (each item's events
    fall in one bucket); the popularity ranks, which need every item, are given last."""
    events = pl.scan_parquet(cleaned_path)
    parts = _span(events, rows_per_part)[3]
    in_bucket = pl.col("item_id").hash(seed=0) % parts
    items = [
        item_aggregates(events.filter(in_bucket == bucket) if parts > 1 else events).collect(engine=STREAMING)
        for bucket in range(parts)
    ]
    return ranked_by_popularity(pl.concat(items).lazy()).collect()
