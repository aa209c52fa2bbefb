"""user_features and item_features: the per-day analysis tables an analyst opens first."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from algo_platform.assets.days import by_day, describe_days, per_day, run_days, suite_each_day
from algo_platform.assets.partitions import days_per_backfill_run
from algo_platform.quality import hard, soft
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.io_managers import AS_ARROW
from algo_platform.schema import EVENT_TYPES

# A view counts as "completed" when at least 90% of the video was watched.
COMPLETION_THRESHOLD = 0.9
TOP_TOPICS = 3


def _as_table(events: pa.Table | pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(events, preserve_index=False) if isinstance(events, pd.DataFrame) else events


def _engagement_columns(events: pa.Table) -> pa.Table:
    """Per-event inputs of the engagement aggregates, as Arrow columns."""
    ratio = pc.divide(pc.cast(events["watch_ms"], pa.float64()), pc.cast(events["item_duration_ms"], pa.float64()))
    # Replays make ratios above 1 legitimate; cap them so one loop-watcher can't dominate a mean.
    ratio = pc.min_element_wise(pc.max_element_wise(ratio, 0.0), 5.0)
    event_type = events["event_type"]
    if pa.types.is_dictionary(event_type.type):
        # Compare the few dictionary values, then pick by code: no per-row string comparison.
        encoded = event_type.combine_chunks()
        kinds = {
            kind: pc.take(pc.cast(pc.equal(encoded.dictionary, kind), pa.int64()), encoded.indices)
            for kind in EVENT_TYPES
        }
    else:
        kinds = {kind: pc.cast(pc.equal(event_type, kind), pa.int64()) for kind in EVENT_TYPES}
    columns = {
        "watch_ratio": ratio,
        # A view without a known ratio counts as not completed.
        "completed": pc.cast(pc.fill_null(pc.greater_equal(ratio, COMPLETION_THRESHOLD), False), pa.int64()),
        **{f"{kind}s": flags for kind, flags in kinds.items()},
    }
    for name, column in columns.items():
        events = events.append_column(name, column)
    return events


def _aggregate(events: pa.Table, key: str, extra: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """One hash aggregation (Arrow, multi-threaded) for everything a feature table counts per key;
    `extra` names further columns as {name: (input column, Arrow aggregate)}."""
    aggregations = {
        "events": (key, "count"),
        "total_watch_ms": ("watch_ms", "sum"),
        "mean_watch_ratio": ("watch_ratio", "mean"),
        "completion_rate": ("completed", "mean"),
        **{f"{kind}s": (f"{kind}s", "sum") for kind in EVENT_TYPES},
        **extra,
    }
    table = events.group_by(key).aggregate(list(aggregations.values()))
    # Arrow names results `<column>_<aggregate>` and puts the key last.
    table = table.select([*(f"{column}_{how}" for column, how in aggregations.values()), key])
    frame = table.rename_columns([*aggregations, key]).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    counts = [key, "events", *(f"{kind}s" for kind in EVENT_TYPES)]
    counts += [name for name, (_, how) in extra.items() if how.startswith("count")]
    frame = frame.astype(dict.fromkeys(counts, "int64"))
    for kind in ("like", "share", "comment", "skip"):
        frame[f"{kind}_rate"] = frame[f"{kind}s"] / frame["events"]
    frame = frame[[*frame.columns.drop(list(extra)), *extra]]
    return frame.sort_values(key, kind="stable").set_index(key)


def _distinct_counts(events: pa.Table, key: str, other: str) -> pd.Series:
    """Number of distinct non-null `other` values per `key` (keys with none are absent).

    Each (key, other) pair is packed into one int64 and hashed once: twice as fast as Arrow's
    grouped count_distinct at 10M events (1.0 s vs 2.0 s). Ids too far apart to pack fall back to
    a two-column group_by."""
    pairs = events.select([key, other]).filter(pc.and_(pc.is_valid(events[key]), pc.is_valid(events[other])))
    keys, others = (pairs[column].to_numpy().astype(np.int64, copy=False) for column in (key, other))
    if len(keys) == 0:
        return pd.Series(dtype="int64")
    key_min, other_min = int(keys.min()), int(others.min())
    key_span, other_span = int(keys.max()) - key_min + 1, int(others.max()) - other_min + 1
    if key_span * other_span >= 2**63:
        distinct = pairs.group_by([key, other]).aggregate([])[key].to_numpy()
    else:
        packed = (keys - key_min) * other_span + (others - other_min)
        distinct = pc.unique(pa.array(packed)).to_numpy() // other_span + key_min
    values, counts = np.unique(distinct, return_counts=True)
    return pd.Series(counts, index=pd.Index(values, name=key), dtype="int64")


def _ranked_within(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal keys (the input is sorted by key)."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    run_index = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
    return np.arange(len(keys)) - starts[run_index]


def _top_values(events: pa.Table, key: str, column: str, weight: str | None, top: int) -> pd.Series:
    """The `top` values of `column` per `key` by total weight (events when None), ties by value,
    joined with ", "."""
    aggregation = ([], "count_all") if weight is None else (weight, "sum")
    totals = events.group_by([key, column]).aggregate([aggregation]).rename_columns([key, column, "w"])
    if pa.types.is_dictionary(totals.schema.field(column).type):  # Arrow sorts plain strings only
        totals = totals.set_column(1, column, totals[column].cast(pa.string()))
    totals = totals.sort_by([(key, "ascending"), ("w", "descending"), (column, "ascending")])
    rank = _ranked_within(totals[key].to_numpy())
    per_rank = [
        totals.filter(pa.array(rank == position)).select([key, column]).to_pandas().set_index(key)[column]
        for position in range(top)
    ]
    joined = per_rank[0].astype("str")
    for following in per_rank[1:]:
        present = following.reindex(joined.index)
        joined = joined.where(present.isna(), joined + ", " + present)
    return joined


def build_user_features(events: pa.Table | pd.DataFrame) -> pd.DataFrame:
    events = _engagement_columns(_as_table(events))
    # Hashing the pairs runs on one core: a thread does it while the rest is computed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        distinct_items = pool.submit(_distinct_counts, events, "user_id", "item_id")
        table = _aggregate(events, "user_id", {"first_ts": ("ts", "min"), "last_ts": ("ts", "max")})
        table = _with_user_profile(table, events)
        distinct = distinct_items.result().reindex(table.index, fill_value=0)
    table.insert(table.columns.get_loc("first_ts"), "distinct_items", distinct)
    return table.reset_index()


def _with_user_profile(table: pd.DataFrame, events: pa.Table) -> pd.DataFrame:
    """Each user's most used device and region, and top topics by watch time."""
    table["main_device"] = _top_values(events, "user_id", "device", None, 1)
    table["main_region"] = _top_values(events, "user_id", "region", None, 1)
    # Watch time decides a user's tastes; the +1 lets a skipped video still count a little.
    weight = pc.add(pc.cast(pc.max_element_wise(pc.fill_null(events["watch_ms"], 0), 0), pa.float64()), 1.0)
    table["top_topics"] = _top_values(events.append_column("weight", weight), "user_id", "topic", "weight", TOP_TOPICS)
    return table


def build_item_features(events: pa.Table | pd.DataFrame) -> pd.DataFrame:
    events = _engagement_columns(_as_table(events))
    with ThreadPoolExecutor(max_workers=1) as pool:  # as in build_user_features
        unique_users = pool.submit(_distinct_counts, events, "item_id", "user_id")
        table = _aggregate(events, "item_id", {})
        topic = _top_values(events, "item_id", "topic", None, 1)
        # Arrow has only an approximate median per group; pandas' grouped median is exact and vectorised.
        durations = pd.Series(events["item_duration_ms"].to_numpy(zero_copy_only=False), dtype="float64")
        median_duration = durations.groupby(events["item_id"].to_numpy()).median()
        table["unique_users"] = unique_users.result().reindex(table.index, fill_value=0)
    table["topic"] = topic
    table["item_duration_ms"] = median_duration
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
        "dagster/row_count": len(table),
        "mean_watch_ratio": float(np.nan_to_num(table["mean_watch_ratio"].mean())),
        "mean_like_rate": float(table["like_rate"].mean()),
        "mean_skip_rate": float(table["skip_rate"].mean()),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
    }


def user_features(context: dg.AssetExecutionContext, cleaned_events) -> dg.Output:
    """Per-user activity of the day: events by type, watch ratio, engagement rates, top topics."""
    return _features_by_day(context, cleaned_events, build_user_features)


def item_features(context: dg.AssetExecutionContext, cleaned_events) -> dg.Output:
    """Per-item reach and engagement of the day: users, watch ratio, like/share/skip rates, rank."""
    return _features_by_day(context, cleaned_events, build_item_features)


def _features_by_day(context: dg.AssetExecutionContext, cleaned_events, build) -> dg.Output:
    tables, metadata = {}, {}
    for day, events in by_day(cleaned_events, run_days(context)).items():
        tables[day] = build(events)
        metadata[day] = _feature_metadata(tables[day], "events")
    describe_days(context, metadata)
    return dg.Output(per_day(tables))


USER_FEATURES_SUITE = "user_features_suite"
ITEM_FEATURES_SUITE = "item_features_suite"
RATE_COLUMNS = ("completion_rate", "like_rate", "share_rate", "comment_rate", "skip_rate")


def _feature_rules(key: str) -> list:
    # No row-count rule: a day without events has no features, and any event makes a row.
    return [
        hard("ExpectColumnValuesToNotBeNull", column=key),
        hard("ExpectColumnValuesToBeUnique", column=key),
        hard("ExpectColumnValuesToBeBetween", column="events", min_value=1),
        *(hard("ExpectColumnValuesToBeBetween", column=rate, min_value=0, max_value=1) for rate in RATE_COLUMNS),
        hard("ExpectColumnValuesToBeBetween", column="mean_watch_ratio", min_value=0, max_value=5),
        # More skips than views on an average account is a product problem worth a look.
        soft("ExpectColumnMeanToBeBetween", column="skip_rate", max_value=0.5),
    ]


def user_features_rules() -> list:
    return _feature_rules("user_id")


def item_features_rules() -> list:
    return [
        *_feature_rules("item_id"),
        hard("ExpectColumnValuesToBeBetween", column="unique_users", min_value=1),
        hard("ExpectColumnValuesToBeBetween", column="popularity_rank", min_value=1),
    ]


def user_features_suite(context: dg.AssetCheckExecutionContext, user_features, data_quality: DataQuality):
    """One row per user, counts positive, rates within [0, 1]."""
    rules = user_features_rules()
    yield from suite_each_day(context, data_quality, user_features, lambda first, last: rules, USER_FEATURES_SUITE)


def item_features_suite(context: dg.AssetCheckExecutionContext, item_features, data_quality: DataQuality):
    """One row per item, counts positive, rates within [0, 1], ranks from 1."""
    rules = item_features_rules()
    yield from suite_each_day(context, data_quality, item_features, lambda first, last: rules, ITEM_FEATURES_SUITE)


def build_feature_assets(partitions: dg.DailyPartitionsDefinition, days_per_run: int = 1) -> list:
    """user_features and item_features of one project, with their checks."""
    options = {
        "partitions_def": partitions,
        "backfill_policy": days_per_backfill_run(days_per_run),
        "group_name": "features",
    }
    arrow = {"cleaned_events": dg.AssetIn(metadata=AS_ARROW)}
    users = dg.asset(**options, kinds={"pandas", "parquet"}, ins=arrow)(user_features)
    items = dg.asset(**options, kinds={"pandas", "parquet"}, ins=arrow)(item_features)
    return [
        users,
        items,
        dg.asset_check(asset=users, name=USER_FEATURES_SUITE, blocking=True, partitions_def=partitions)(
            user_features_suite
        ),
        dg.asset_check(asset=items, name=ITEM_FEATURES_SUITE, blocking=True, partitions_def=partitions)(
            item_features_suite
        ),
    ]
