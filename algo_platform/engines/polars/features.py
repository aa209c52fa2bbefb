"""Per-user and per-item features of a day's cleaned events, as polars lazy frames.

Each is one pass of hash aggregations over the events (a lazy frame from memory or from a Parquet
scan), so the streaming engine computes them in memory proportional to users and items, not events.
"""

import polars as pl

from algo_platform.core.schema import EVENT_TYPES

# A view counts as "completed" when at least 90% of the video was watched.
COMPLETION_THRESHOLD = 0.9
TOP_TOPICS = 3
RATE_KINDS = ("like", "share", "comment", "skip")


def _engagement() -> list[pl.Expr]:
    """What every feature table counts per key: events by type, watch time, ratios and rates."""
    watch = pl.col("watch_ms")
    # Replays make ratios above 1 legitimate; cap them so one loop-watcher can't dominate a mean.
    ratio = (watch / pl.col("item_duration_ms")).clip(0.0, 5.0)
    return [
        pl.len().cast(pl.Int64).alias("events"),
        # A key whose watch times are all unknown has an unknown total, not 0.
        pl.when(watch.count() > 0).then(watch.sum()).alias("total_watch_ms"),
        ratio.mean().alias("mean_watch_ratio"),
        # A view without a known ratio counts as not completed.
        (ratio >= COMPLETION_THRESHOLD).fill_null(False).mean().alias("completion_rate"),
        *((pl.col("event_type") == kind).sum().cast(pl.Int64).alias(f"{kind}s") for kind in EVENT_TYPES),
        *((pl.col("event_type") == kind).mean().alias(f"{kind}_rate") for kind in RATE_KINDS),
    ]


def _top_values(
    events: pl.LazyFrame, key: str, column: str, weight: pl.Expr | None, top: int, name: str
) -> pl.LazyFrame:
    """The `top` values of `column` per `key` by total weight (None: by events), ties by value,
    joined with ", "."""
    # A literal's sum in a group is the literal itself, not one per row: events are counted by len().
    total = pl.len().cast(pl.Float64) if weight is None else weight.sum()
    totals = events.group_by(key, column).agg(total.alias("_weight"))
    return (
        totals.with_columns(pl.col(column).cast(pl.String))
        .sort(key, "_weight", column, descending=[False, True, False])
        .group_by(key, maintain_order=True)
        .agg(pl.col(column).head(top).str.join(", ").alias(name))
    )


def user_features(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per-user activity: events by type, watch ratio, engagement rates, devices, top topics."""
    ts = pl.col("ts")
    # Watch time decides a user's tastes; the +1 lets a skipped video still count a little.
    watch_weight = pl.col("watch_ms").fill_null(0).clip(lower_bound=0).cast(pl.Float64) + 1.0
    return (
        events.group_by("user_id")
        .agg(
            *_engagement(),
            pl.col("item_id").drop_nulls().n_unique().cast(pl.Int64).alias("distinct_items"),
            ts.min().alias("first_ts"),
            ts.max().alias("last_ts"),
        )
        .join(_top_values(events, "user_id", "device", None, 1, "main_device"), on="user_id", how="left")
        .join(_top_values(events, "user_id", "region", None, 1, "main_region"), on="user_id", how="left")
        .join(_top_values(events, "user_id", "topic", watch_weight, TOP_TOPICS, "top_topics"), on="user_id", how="left")
        .sort("user_id")
    )


def item_features(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per-item reach and engagement: users, watch ratio, like/share/skip rates, topic, popularity rank."""
    return ranked_by_popularity(item_aggregates(events))


def ranked_by_popularity(items: pl.LazyFrame) -> pl.LazyFrame:
    """Items with their popularity rank (1: most events; ties share the rank), most popular first."""
    return items.with_columns(
        pl.col("events").rank("min", descending=True).cast(pl.Int64).alias("popularity_rank")
    ).sort("popularity_rank", "item_id")


def item_aggregates(events: pl.LazyFrame) -> pl.LazyFrame:
    """Everything of `item_features` that each item's own events decide (all but the rank)."""
    return (
        events.group_by("item_id")
        .agg(
            *_engagement(),
            pl.col("user_id").drop_nulls().n_unique().cast(pl.Int64).alias("unique_users"),
            pl.col("item_duration_ms").median().alias("median_duration_ms"),
        )
        .join(_top_values(events, "item_id", "topic", None, 1, "topic"), on="item_id", how="left")
        .select(pl.exclude("median_duration_ms"), pl.col("median_duration_ms").alias("item_duration_ms"))
    )
