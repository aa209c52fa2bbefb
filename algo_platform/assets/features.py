"""user_features and item_features: the per-day analysis tables an analyst opens first."""

import dagster as dg
import numpy as np
import pandas as pd

from algo_platform.assets.partitions import daily_partitions, one_day_per_run
from algo_platform.quality import hard, soft
from algo_platform.resources.data_quality import DataQuality, suite_check_result
from algo_platform.schema import EVENT_TYPES

# A view counts as "completed" when at least 90% of the video was watched.
COMPLETION_THRESHOLD = 0.9
TOP_TOPICS = 3


def _with_watch_ratio(events: pd.DataFrame) -> pd.DataFrame:
    ratio = events["watch_ms"].astype("Float64") / events["item_duration_ms"].astype("Float64")
    # Replays make ratios above 1 legitimate; cap them so one loop-watcher can't dominate a mean.
    return events.assign(watch_ratio=ratio.clip(lower=0, upper=5).astype("float64"))


def _event_type_counts(events: pd.DataFrame, key: str) -> pd.DataFrame:
    counts = pd.crosstab(events[key], events["event_type"].astype("string"))
    counts = counts.reindex(columns=list(EVENT_TYPES), fill_value=0)
    return counts.rename(columns={t: f"{t}s" for t in EVENT_TYPES})


def _engagement(events: pd.DataFrame, key: str) -> pd.DataFrame:
    events = _with_watch_ratio(events)
    grouped = events.groupby(key, sort=True)
    table = pd.DataFrame(
        {
            "events": grouped.size(),
            "total_watch_ms": grouped["watch_ms"].sum(min_count=1).astype("Int64"),
            "mean_watch_ratio": grouped["watch_ratio"].mean(),
            "completion_rate": (events["watch_ratio"] >= COMPLETION_THRESHOLD).groupby(events[key]).mean(),
        }
    ).join(_event_type_counts(events, key))
    for kind in ("like", "share", "comment", "skip"):
        table[f"{kind}_rate"] = table[f"{kind}s"] / table["events"]
    return table


def _top_topics(events: pd.DataFrame) -> pd.Series:
    """The user's most-watched topics (by watch time, then events), comma-separated."""
    weight = events["watch_ms"].fillna(0).clip(lower=0).astype("float64") + 1.0
    per_topic = weight.groupby([events["user_id"], events["topic"]]).sum().rename("weight").reset_index()
    per_topic = per_topic.sort_values(["user_id", "weight"], ascending=[True, False], kind="stable")
    top = per_topic.groupby("user_id").head(TOP_TOPICS)
    return top.groupby("user_id")["topic"].agg(", ".join)


def build_user_features(events: pd.DataFrame) -> pd.DataFrame:
    table = _engagement(events, "user_id")
    grouped = events.groupby("user_id", sort=True)
    table["distinct_items"] = grouped["item_id"].nunique()
    table["first_ts"] = grouped["ts"].min()
    table["last_ts"] = grouped["ts"].max()
    table["main_device"] = _mode(events, "user_id", "device")
    table["main_region"] = _mode(events, "user_id", "region")
    table["top_topics"] = _top_topics(events)
    return table.reset_index()


def _mode(events: pd.DataFrame, key: str, column: str) -> pd.Series:
    counts = events.groupby([key, column], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", column], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates(key).set_index(key)[column]


def build_item_features(events: pd.DataFrame) -> pd.DataFrame:
    table = _engagement(events, "item_id")
    grouped = events.groupby("item_id", sort=True)
    table["unique_users"] = grouped["user_id"].nunique()
    table["topic"] = _mode(events, "item_id", "topic")
    table["item_duration_ms"] = grouped["item_duration_ms"].median()
    table["popularity_rank"] = table["events"].rank(ascending=False, method="min").astype("int64")
    return table.reset_index().sort_values("popularity_rank", kind="stable").reset_index(drop=True)


def _feature_metadata(table: pd.DataFrame, sort_by: str) -> dict[str, dg.MetadataValue | int | float]:
    preview = (
        table.sort_values(sort_by, ascending=False)
        .head(10)
        .round(dict.fromkeys(table.select_dtypes("float").columns, 3))
    )
    return {
        "rows": len(table),
        "mean_watch_ratio": float(np.nan_to_num(table["mean_watch_ratio"].mean())),
        "mean_like_rate": float(table["like_rate"].mean()),
        "mean_skip_rate": float(table["skip_rate"].mean()),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    }


@dg.asset(
    partitions_def=daily_partitions, backfill_policy=one_day_per_run, group_name="features", kinds={"pandas", "parquet"}
)
def user_features(cleaned_events: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Per-user activity of the day: events by type, watch ratio, engagement rates, top topics."""
    table = build_user_features(cleaned_events)
    return dg.Output(table, metadata=_feature_metadata(table, "events"))


@dg.asset(
    partitions_def=daily_partitions, backfill_policy=one_day_per_run, group_name="features", kinds={"pandas", "parquet"}
)
def item_features(cleaned_events: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Per-item reach and engagement of the day: users, watch ratio, like/share/skip rates, rank."""
    table = build_item_features(cleaned_events)
    return dg.Output(table, metadata=_feature_metadata(table, "events"))


USER_FEATURES_SUITE = "user_features_suite"
ITEM_FEATURES_SUITE = "item_features_suite"
RATE_COLUMNS = ("completion_rate", "like_rate", "share_rate", "comment_rate", "skip_rate")


def _feature_rules(key: str) -> list:
    return [
        hard("ExpectTableRowCountToBeBetween", min_value=1),
        hard("ExpectColumnValuesToNotBeNull", column=key),
        hard("ExpectColumnValuesToBeUnique", column=key),
        hard("ExpectColumnValuesToBeBetween", column="events", min_value=1),
        *(hard("ExpectColumnValuesToBeBetween", column=rate, min_value=0, max_value=1) for rate in RATE_COLUMNS),
        hard("ExpectColumnValuesToBeBetween", column="mean_watch_ratio", min_value=0, max_value=5),
        # More skips than views on an average account is a product problem worth a look.
        soft("ExpectColumnMeanToBeBetween", column="skip_rate", max_value=0.5),
    ]


@dg.asset_check(asset=user_features, name=USER_FEATURES_SUITE, blocking=True, partitions_def=daily_partitions)
def user_features_suite(user_features: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
    """One row per user, counts positive, rates within [0, 1]."""
    rules = _feature_rules("user_id")
    return suite_check_result(data_quality.validate(user_features, rules, USER_FEATURES_SUITE), USER_FEATURES_SUITE)


@dg.asset_check(asset=item_features, name=ITEM_FEATURES_SUITE, blocking=True, partitions_def=daily_partitions)
def item_features_suite(item_features: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
    """One row per item, counts positive, rates within [0, 1], ranks from 1."""
    rules = [
        *_feature_rules("item_id"),
        hard("ExpectColumnValuesToBeBetween", column="unique_users", min_value=1),
        hard("ExpectColumnValuesToBeBetween", column="popularity_rank", min_value=1),
    ]
    return suite_check_result(data_quality.validate(item_features, rules, ITEM_FEATURES_SUITE), ITEM_FEATURES_SUITE)
