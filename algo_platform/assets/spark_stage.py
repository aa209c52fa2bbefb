"""cleaned_events, user_features and item_features of a project whose data engine is Spark.

One Spark application per day computes all three (a JVM and executors start once, and the
cleaned table is read from storage by the features without a round trip through Dagster). The
assets, their checks and their metadata are the polars steps' own: the job reports them through
Dagster Pipes, so the UI shows a Spark day as it shows a polars one.
"""

import datetime as dt

import dagster as dg

from algo_platform.assets.days import days_per_backfill_run
from algo_platform.assets.events import CLEANED_DRIFT, cleaned_events_drift
from algo_platform.quality.contracts import CLEANED_SUITE, ITEM_FEATURES_SUITE, USER_FEATURES_SUITE
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.spark_launcher import SparkLauncher
from algo_platform.resources.storage import PlatformStorage

TABLES = ("raw_events", "cleaned_events", "user_features", "item_features")


def spark_data_stage(
    context: dg.AssetExecutionContext,
    storage: PlatformStorage,
    data_quality: DataQuality,
    spark_launcher: SparkLauncher,
):
    """Raw events of the day cleaned, then user and item features, on Spark."""
    day = context.partition_key
    keys = {key.path[-1]: key.to_user_string() for key in context.assets_def.keys}
    extras = {
        "day": day,
        "now": dt.datetime.now(dt.UTC).isoformat(),
        "asset_keys": keys,
        "paths": {table: storage.layout.table(table, day) for table in TABLES},
        "data_quality": data_quality.model_dump(),
    }
    yield from spark_launcher.run_stage(context, extras).get_results()


def build_spark_stage_assets(partitions: PeriodPartitions) -> list:
    """The Spark multi-asset (one day per run: a day on Spark is large by definition) and the drift check."""
    ingest = {"partitions_def": partitions, "group_name": "ingest", "kinds": {"spark", "parquet"}}
    features = {**ingest, "group_name": "features", "deps": ["cleaned_events"]}
    specs = [
        dg.AssetSpec("cleaned_events", deps=["raw_events"], **ingest),
        dg.AssetSpec("user_features", **features),
        dg.AssetSpec("item_features", **features),
    ]
    check_specs = [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=partitions)
        for name, asset in (
            (CLEANED_SUITE, "cleaned_events"),
            (USER_FEATURES_SUITE, "user_features"),
            (ITEM_FEATURES_SUITE, "item_features"),
        )
    ]
    stage = dg.multi_asset(
        name="spark_data_stage",
        specs=specs,
        check_specs=check_specs,
        partitions_def=partitions,
        backfill_policy=days_per_backfill_run(1),
    )(spark_data_stage)
    drift = dg.asset_check(asset="cleaned_events", name=CLEANED_DRIFT, partitions_def=partitions)(cleaned_events_drift)
    return [stage, drift]
