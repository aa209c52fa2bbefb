"""Our cleaning + feature transformation written directly in DuckDB and in polars.

The same work as `clean_table`, `build_user_features` and `build_item_features`: normalised
text, drop counts per first reason, dedup on event_id (first row wins), rows sorted by user and
time, then per-user and per-item engagement, distinct counts, modes, top topics, median duration
and popularity rank. `tests/system/test_bench.py` checks all three give the same tables.
"""

import datetime as dt

import numpy as np
import polars as pl
import pyarrow as pa

from algo_platform.core.schema import EVENT_TYPES
from algo_platform.quality.dimensions import FUTURE_TOLERANCE

TYPES_SQL = ", ".join(f"'{kind}'" for kind in EVENT_TYPES)
RATE_KINDS = ("like", "share", "comment", "skip")

DUCKDB_CLEAN = f"""
CREATE OR REPLACE TABLE typed AS
SELECT * EXCLUDE (event_type, device, region, topic, source_file),
       coalesce(lower(trim(event_type)), 'play') AS event_type,
       coalesce(lower(trim(device)), 'unknown') AS device,
       coalesce(lower(trim(region)), 'unknown') AS region,
       coalesce(lower(trim(topic)), 'unknown') AS topic,
       CASE
         WHEN user_id IS NULL THEN 'missing_user_id'
         WHEN item_id IS NULL THEN 'missing_item_id'
         WHEN user_id <= 0 THEN 'non_positive_user_id'
         WHEN item_id <= 0 THEN 'non_positive_item_id'
         WHEN ts IS NULL THEN 'missing_ts'
         WHEN coalesce(lower(trim(event_type)), 'play') NOT IN ({TYPES_SQL}) THEN 'unknown_event_type'
         WHEN watch_ms < 0 THEN 'negative_watch_ms'
         WHEN item_duration_ms <= 0 THEN 'invalid_item_duration'
         WHEN ts > $future THEN 'future_timestamp'
         WHEN ts < $start OR ts >= $end THEN 'outside_partition_day'
       END AS reason,
       row_index
FROM raw
"""

DUCKDB_DEDUP = """
CREATE OR REPLACE TABLE cleaned AS
SELECT * EXCLUDE (reason, row_index, first_row) FROM (
  SELECT *, row_index = min(row_index) OVER (PARTITION BY event_id) AS first_row
  FROM typed WHERE reason IS NULL
) WHERE first_row ORDER BY user_id, ts, row_index
"""

DUCKDB_DROPS = """
SELECT reason, count(*) AS n FROM typed WHERE reason IS NOT NULL GROUP BY reason
UNION ALL
SELECT 'duplicate_event_id', (SELECT count(*) FROM typed WHERE reason IS NULL) - (SELECT count(*) FROM cleaned)
"""

ENGAGEMENT_SQL = ",\n".join(
    [
        "count(*) AS events",
        "sum(watch_ms)::BIGINT AS total_watch_ms",
        "avg(least(greatest(watch_ms / item_duration_ms, 0), 5)) AS mean_watch_ratio",
        "avg(coalesce(least(greatest(watch_ms / item_duration_ms, 0), 5) >= 0.9, false)::int) AS completion_rate",
        *(f"count(*) FILTER (WHERE event_type = '{kind}') AS {kind}s" for kind in EVENT_TYPES),
        *(f"avg((event_type = '{kind}')::int) AS {kind}_rate" for kind in RATE_KINDS),
    ]
)


def _duckdb_top(key: str, column: str, weight: str, top: int) -> str:
    """The `top` values of `column` per `key` by total weight, ties by value, joined with ', '."""
    return f"""
    SELECT {key}, string_agg({column}, ', ' ORDER BY w DESC, {column}) AS value FROM (
      SELECT {key}, {column}, sum({weight}) AS w,
             row_number() OVER (PARTITION BY {key} ORDER BY sum({weight}) DESC, {column}) AS position
      FROM cleaned GROUP BY {key}, {column}
    ) WHERE position <= {top} GROUP BY {key}"""


DUCKDB_USERS = f"""
WITH base AS (
  SELECT user_id, {ENGAGEMENT_SQL},
         count(DISTINCT item_id) AS distinct_items, min(ts) AS first_ts, max(ts) AS last_ts
  FROM cleaned GROUP BY user_id
)
SELECT base.*, device.value AS main_device, region.value AS main_region, topics.value AS top_topics
FROM base
JOIN ({_duckdb_top("user_id", "device", "1", 1)}) device USING (user_id)
JOIN ({_duckdb_top("user_id", "region", "1", 1)}) region USING (user_id)
JOIN ({_duckdb_top("user_id", "topic", "greatest(coalesce(watch_ms, 0), 0) + 1.0", 3)}) topics USING (user_id)
ORDER BY user_id
"""

DUCKDB_ITEMS = f"""
WITH base AS (
  SELECT item_id, {ENGAGEMENT_SQL},
         count(DISTINCT user_id) AS unique_users, median(item_duration_ms) AS item_duration_ms
  FROM cleaned GROUP BY item_id
)
SELECT base.* EXCLUDE (item_duration_ms), topic.value AS topic, item_duration_ms,
       rank() OVER (ORDER BY events DESC) AS popularity_rank
FROM base JOIN ({_duckdb_top("item_id", "topic", "1", 1)}) topic USING (item_id)
ORDER BY popularity_rank, item_id
"""


def duckdb_clean_and_features(
    raw: pa.Table, day: dt.date, now: dt.datetime
) -> tuple[pa.Table, dict[str, int], pa.Table, pa.Table]:
    import duckdb

    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    bounds = {"start": start, "end": start + dt.timedelta(days=1), "future": now + FUTURE_TOLERANCE}
    with duckdb.connect() as connection:
        # Row positions decide which duplicate is kept; a parallel scan has no order of its own.
        connection.register("raw", raw.append_column("row_index", pa.array(np.arange(raw.num_rows))))
        connection.execute(DUCKDB_CLEAN, bounds)
        connection.execute(DUCKDB_DEDUP)
        drops = dict(connection.execute(DUCKDB_DROPS).fetchall())
        users = connection.sql(DUCKDB_USERS).to_arrow_table()
        items = connection.sql(DUCKDB_ITEMS).to_arrow_table()
        cleaned = connection.sql("SELECT * FROM cleaned").to_arrow_table()
    return cleaned, drops, users, items


def polars_clean_and_features(
    raw: pa.Table | pl.DataFrame, day: dt.date, now: dt.datetime
) -> tuple[pa.Table, dict[str, int], pa.Table, pa.Table]:
    import polars as pl

    def normalised(column: str, missing: str) -> pl.Expr:
        return pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase().fill_null(missing)

    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    ts = pl.col("ts")
    reason = (
        pl.when(pl.col("user_id").is_null())
        .then(pl.lit("missing_user_id"))
        .when(pl.col("item_id").is_null())
        .then(pl.lit("missing_item_id"))
        .when(pl.col("user_id") <= 0)
        .then(pl.lit("non_positive_user_id"))
        .when(pl.col("item_id") <= 0)
        .then(pl.lit("non_positive_item_id"))
        .when(ts.is_null())
        .then(pl.lit("missing_ts"))
        .when(~pl.col("event_type").is_in(EVENT_TYPES))
        .then(pl.lit("unknown_event_type"))
        .when(pl.col("watch_ms") < 0)
        .then(pl.lit("negative_watch_ms"))
        .when(pl.col("item_duration_ms") <= 0)
        .then(pl.lit("invalid_item_duration"))
        .when(ts > now + FUTURE_TOLERANCE)
        .then(pl.lit("future_timestamp"))
        .when((ts < start) | (ts >= start + dt.timedelta(days=1)))
        .then(pl.lit("outside_partition_day"))
    )
    typed = (
        (raw if isinstance(raw, pl.DataFrame) else pl.from_arrow(raw))
        .drop("source_file", strict=False)
        .with_columns(
            normalised("event_type", "play"), *(normalised(name, "unknown") for name in ("device", "region", "topic"))
        )
        .with_columns(reason.alias("reason"))
    )
    valid = typed.filter(pl.col("reason").is_null()).drop("reason")
    cleaned = valid.unique(subset="event_id", keep="first", maintain_order=True).sort(
        ["user_id", "ts"], maintain_order=True
    )
    drops = dict(typed.group_by("reason").len().drop_nulls().iter_rows())
    drops["duplicate_event_id"] = valid.height - cleaned.height

    ratio = (pl.col("watch_ms") / pl.col("item_duration_ms")).clip(0, 5)
    engagement = [
        pl.len().alias("events"),
        pl.col("watch_ms").sum().alias("total_watch_ms"),
        ratio.mean().alias("mean_watch_ratio"),
        (ratio >= 0.9).fill_null(False).mean().alias("completion_rate"),
        *((pl.col("event_type") == kind).sum().alias(f"{kind}s") for kind in EVENT_TYPES),
        *((pl.col("event_type") == kind).mean().alias(f"{kind}_rate") for kind in RATE_KINDS),
    ]

    def top(key: str, column: str, total: pl.Expr, count: int, name: str) -> pl.DataFrame:
        totals = cleaned.group_by(key, column).agg(total.alias("w"))
        ranked = totals.sort([key, "w", column], descending=[False, True, False])
        return ranked.group_by(key, maintain_order=True).agg(pl.col(column).head(count).str.join(", ").alias(name))

    events = pl.len().cast(pl.Float64)  # pl.lit(1.0).sum() in a group is 1.0, not a count
    watch_weight = (pl.col("watch_ms").fill_null(0).clip(0) + 1.0).sum()
    users = (
        cleaned.group_by("user_id")
        .agg(
            *engagement,
            pl.col("item_id").n_unique().alias("distinct_items"),
            ts.min().alias("first_ts"),
            ts.max().alias("last_ts"),
        )
        .join(top("user_id", "device", events, 1, "main_device"), on="user_id")
        .join(top("user_id", "region", events, 1, "main_region"), on="user_id")
        .join(top("user_id", "topic", watch_weight, 3, "top_topics"), on="user_id")
        .sort("user_id")
    )
    items = (
        cleaned.group_by("item_id")
        .agg(
            *engagement,
            pl.col("user_id").n_unique().alias("unique_users"),
            pl.col("item_duration_ms").median(),
        )
        .join(top("item_id", "topic", events, 1, "topic"), on="item_id")
        .select(pl.exclude("item_duration_ms"), "item_duration_ms")
        .with_columns(pl.col("events").rank("min", descending=True).alias("popularity_rank"))
        .sort(["popularity_rank", "item_id"])
    )
    return cleaned.to_arrow(), drops, users.to_arrow(), items.to_arrow()
