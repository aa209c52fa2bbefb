"""user_features and item_features: the per-day analysis tables an analyst opens first."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import pyarrow as pa
from upath import UPath

from algo_platform.assets.days import DayResult, days_per_backfill_run, materialize_days, suite_each_day
from algo_platform.assets.metadata import as_metadata
from algo_platform.core.project import DataSource
from algo_platform.core.schema import EVENT_TYPES
from algo_platform.engines.polars.features import item_features as item_features_plan
from algo_platform.engines.polars.features import user_features as user_features_plan
from algo_platform.engines.polars.large_day import item_features_of_file, user_features_of_file
from algo_platform.quality.contracts import (
    ITEM_FEATURES_SUITE,
    USER_FEATURES_SUITE,
    item_features_rules,
    user_features_rules,
)
from algo_platform.quality.summaries import feature_summary
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.io_managers import AS_PATH, local_file
from algo_platform.resources.partitions import PeriodPartitions

# Counts come out as int64, totals that can be unknown (all watch times missing) as nullable Int64.
_COUNT_COLUMNS = (
    "user_id",
    "item_id",
    "events",
    *(f"{kind}s" for kind in EVENT_TYPES),
    "distinct_items",
    "unique_users",
    "popularity_rank",
)


def _as_lazy(events: pa.Table | pd.DataFrame) -> pl.LazyFrame:
    table = pa.Table.from_pandas(events, preserve_index=False) if isinstance(events, pd.DataFrame) else events
    return pl.from_arrow(table).lazy()


def feature_frame(table: pl.DataFrame) -> pd.DataFrame:
    """A feature table as pandas, in the stored dtypes."""
    frame = table.to_arrow().to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return frame.astype({name: "int64" for name in _COUNT_COLUMNS if name in frame.columns})


def build_user_features(events: pa.Table | pd.DataFrame) -> pd.DataFrame:
    return feature_frame(user_features_plan(_as_lazy(events)).collect())


def build_item_features(events: pa.Table | pd.DataFrame) -> pd.DataFrame:
    return feature_frame(item_features_plan(_as_lazy(events)).collect())


def _feature_metadata(table: pd.DataFrame, sort_by: str) -> dict[str, dg.MetadataValue | int | float]:
    summary = feature_summary(
        rows=len(table),
        mean_watch_ratio=table["mean_watch_ratio"].mean(),
        like_rate=table["like_rate"].mean(),
        skip_rate=table["skip_rate"].mean(),
        top=table.sort_values(sort_by, ascending=False).head(10),
    )
    return as_metadata(summary)


def user_features(context: dg.AssetExecutionContext, cleaned_events):
    """Per-user activity of the day: events by type, watch ratio, engagement rates, top topics."""
    yield from _features_by_day(context, cleaned_events, user_features_of_file)


def item_features(context: dg.AssetExecutionContext, cleaned_events):
    """Per-item reach and engagement of the day: users, watch ratio, like/share/skip rates, rank."""
    yield from _features_by_day(context, cleaned_events, item_features_of_file)


def _features_by_day(context: dg.AssetExecutionContext, cleaned_events, of_file: Callable[[Path], pl.DataFrame]):
    """Each day's features from its cleaned file, read by polars' streaming engine (in parts for
    a day of many events): memory grows with the day's users and items, not its events."""

    def features(day: str, cleaned_path: UPath) -> DayResult:
        with local_file(cleaned_path) as events:
            table = feature_frame(of_file(events))
        return DayResult(table, _feature_metadata(table, "events"))

    yield from materialize_days(context, features, cleaned_events)


def user_features_suite(context: dg.AssetCheckExecutionContext, user_features, data_quality: DataQuality):
    """One row per user, counts positive, rates within [0, 1]."""
    rules = user_features_rules()
    yield from suite_each_day(context, data_quality, user_features, lambda first, last: rules, USER_FEATURES_SUITE)


def item_features_suite(context: dg.AssetCheckExecutionContext, item_features, data_quality: DataQuality):
    """One row per item, counts positive, rates within [0, 1], ranks from 1."""
    rules = item_features_rules()
    yield from suite_each_day(context, data_quality, item_features, lambda first, last: rules, ITEM_FEATURES_SUITE)


def build_feature_assets(partitions: PeriodPartitions, data: DataSource) -> list:
    """user_features and item_features of one project, with their checks."""
    options = {
        "partitions_def": partitions,
        "backfill_policy": days_per_backfill_run(data.days_per_run),
        "group_name": "features",
    }
    by_path = {"cleaned_events": dg.AssetIn(metadata=AS_PATH)}
    users = dg.asset(**options, kinds={"polars", "parquet"}, ins=by_path)(user_features)
    items = dg.asset(**options, kinds={"polars", "parquet"}, ins=by_path)(item_features)
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
