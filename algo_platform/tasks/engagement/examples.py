"""Engagement examples: one row per impression (an event: the item was shown and played), its label,
and features computed only from the days before the impression's day, so nothing leaks from the
day being predicted.

Features, per impression on day D, from the window's days before D:
- the user: impressions, engagement rate, mean watch ratio;
- the item: impressions, engagement rate, mean watch ratio;
- the user on the item's topic: impressions, engagement rate, share of the user's impressions;
- context: the hour of day (as sin/cos).
Rates are smoothed towards the rate of all impressions before D (a new user or item gets the
average, not 0 or 1). Topic and watch time are optional columns: without them their features are 0.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import polars as pl

from algo_platform.tasks.engagement.features import FEATURES

# Impressions' worth of prior a smoothed rate starts from.
PRIOR_WEIGHT = 10.0
SPLITS = ("train", "validation", "holdout")


def labelled(events: pl.LazyFrame, positive_events: Sequence[str], complete_ratio: float | None) -> pl.LazyFrame:
    """Every impression with its day, watch ratio and 0/1 label."""
    columns = events.collect_schema().names()
    ratio = (
        (pl.col("watch_ms").cast(pl.Float64) / pl.col("item_duration_ms").cast(pl.Float64)).clip(0.0, 3.0)
        if {"watch_ms", "item_duration_ms"} <= set(columns)
        else pl.lit(None, pl.Float64)
    )
    topic = pl.col("topic").cast(pl.String) if "topic" in columns else pl.lit(None, pl.String)
    frame = events.select(
        "user_id", "item_id", "ts", pl.col("event_type").cast(pl.String), ratio.alias("watch_ratio"),
        topic.fill_null("").alias("topic"),
    )  # fmt: skip
    positive = pl.col("event_type").is_in(list(positive_events))
    if complete_ratio is not None:
        positive = positive | (pl.col("watch_ratio") >= complete_ratio).fill_null(False)
    return frame.with_columns(day=pl.col("ts").dt.date(), hour=pl.col("ts").dt.hour(), label=positive.cast(pl.Int8))


def _before(impressions: pl.LazyFrame, keys: list[str], prefix: str) -> pl.LazyFrame:
    """Per key and day: impressions, positives and watch-ratio sums of the key's earlier days."""
    daily = impressions.group_by([*keys, "day"]).agg(
        n=pl.len(), pos=pl.col("label").sum(), ratio=pl.col("watch_ratio").sum(), rated=pl.col("watch_ratio").count()
    )
    cumulative = {
        name: pl.col(name).cum_sum().over(keys, order_by="day") - pl.col(name)
        for name in ("n", "pos", "ratio", "rated")
    }
    return daily.select(
        *keys, "day",
        cumulative["n"].alias(f"{prefix}_n"),
        cumulative["pos"].alias(f"{prefix}_pos"),
        (cumulative["ratio"] / cumulative["rated"]).fill_nan(None).fill_null(0.0).alias(f"{prefix}_watch_ratio"),
    )  # fmt: skip


def _smoothed(prefix: str) -> pl.Expr:
    return (pl.col(f"{prefix}_pos") + PRIOR_WEIGHT * pl.col("prior")) / (pl.col(f"{prefix}_n") + PRIOR_WEIGHT)


def with_features(impressions: pl.LazyFrame) -> pl.LazyFrame:
    """`impressions` (from `labelled`) with every feature of FEATURES."""
    daily = impressions.group_by("day").agg(n=pl.len(), pos=pl.col("label").sum()).sort("day")
    prior = daily.select(
        "day",
        ((pl.col("pos").cum_sum() - pl.col("pos") + 1) / (pl.col("n").cum_sum() - pl.col("n") + 2)).alias("prior"),
    )
    frame = (
        impressions.join(prior, on="day", how="left")
        .join(_before(impressions, ["user_id"], "user"), on=["user_id", "day"], how="left")
        .join(_before(impressions, ["item_id"], "item"), on=["item_id", "day"], how="left")
        .join(_before(impressions, ["user_id", "topic"], "user_topic"), on=["user_id", "topic", "day"], how="left")
    )
    return _finished(frame)


def _finished(frame: pl.LazyFrame) -> pl.LazyFrame:
    """FEATURES from the joined counts (`<prefix>_n`, `_pos`, `_watch_ratio`), `prior` and `hour`."""
    angle = pl.col("hour").cast(pl.Float64) * (2 * math.pi / 24)
    return frame.with_columns(
        user_log_impressions=pl.col("user_n").log1p(),
        user_rate=_smoothed("user"),
        item_log_impressions=pl.col("item_n").log1p(),
        item_rate=_smoothed("item"),
        user_topic_log_impressions=pl.col("user_topic_n").log1p(),
        user_topic_rate=_smoothed("user_topic"),
        user_topic_share=(pl.col("user_topic_n") / pl.col("user_n")).fill_nan(0.0),
        hour_sin=angle.sin(),
        hour_cos=angle.cos(),
    ).with_columns(pl.col(list(FEATURES)).cast(pl.Float32).fill_null(0.0))


def _totals(impressions: pl.LazyFrame, keys: list[str], prefix: str) -> pl.LazyFrame:
    return impressions.group_by(keys).agg(
        pl.len().alias(f"{prefix}_n"),
        pl.col("label").sum().alias(f"{prefix}_pos"),
        pl.col("watch_ratio").mean().fill_null(0.0).alias(f"{prefix}_watch_ratio"),
    )


def candidate_features(
    events: pl.LazyFrame | pl.DataFrame,
    candidates: pl.DataFrame,
    as_of: dt.date,
    positive_events: Sequence[str],
    complete_ratio: float | None = None,
) -> pl.DataFrame:
    """FEATURES of (user_id, item_id, hour) pairs a model has not seen shown, from the events before
    `as_of`: how a ranker scores the candidates a retrieval model proposes."""
    impressions = labelled(events.lazy(), positive_events, complete_ratio).filter(pl.col("day") < as_of)
    totals = impressions.select(pl.len().alias("n"), pl.col("label").sum().alias("pos")).collect()
    prior = (float(totals["pos"][0] or 0) + 1) / (totals["n"][0] + 2)
    item_topic = impressions.group_by("item_id").agg(pl.col("topic").last())
    frame = (
        candidates.lazy()
        .join(item_topic, on="item_id", how="left")
        .with_columns(pl.col("topic").fill_null(""), prior=pl.lit(prior))
        .join(_totals(impressions, ["user_id"], "user"), on="user_id", how="left")
        .join(_totals(impressions, ["item_id"], "item"), on="item_id", how="left")
        .join(_totals(impressions, ["user_id", "topic"], "user_topic"), on=["user_id", "topic"], how="left")
        .with_columns(pl.col("^.*_(n|pos)$").fill_null(0))
    )
    return _finished(frame).select("user_id", "item_id", *FEATURES).collect()


def build_examples(
    events: pl.LazyFrame | pl.DataFrame,
    holdout_day: dt.date,
    positive_events: Sequence[str],
    complete_ratio: float | None = None,
) -> pl.DataFrame:
    """The examples of a window ending at `holdout_day`: the window's first day gives only history
    (nothing before it to featurise from), the day before the held-out one validates, the held-out day
    is evaluated; the days between train."""
    impressions = labelled(events.lazy(), positive_events, complete_ratio)
    first_day = impressions.select(pl.col("day").min()).collect().item()
    validation_day = holdout_day - dt.timedelta(days=1)
    split = (
        pl.when(pl.col("day") == holdout_day)
        .then(pl.lit("holdout"))
        .when(pl.col("day") == validation_day)
        .then(pl.lit("validation"))
        .otherwise(pl.lit("train"))
    )
    return (
        with_features(impressions)
        .filter(pl.col("day") > first_day)
        .with_columns(split=split)
        .select("user_id", "item_id", "day", "hour", "topic", "split", "label", *FEATURES)
        .sort("day", "user_id", "item_id")
        .collect()
    )
