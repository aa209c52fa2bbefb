"""`python -m algo_platform.engines.spark.job`: a day's raw -> cleaned -> features on Spark, launched
by Dagster Pipes (a local subprocess, or the Spark driver pod on Kubernetes).

The launcher passes the paths, the day and the quality settings as Pipes extras. The job reports
back what the polars steps report: each table's materialization with its row counts, drop counts
per reason, quality dimensions and profile, and the Great Expectations suites, validated by Spark
where the data is (GX's Spark datasource), as check results.
"""

import datetime as dt
import json
import os
import tempfile
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from algo_platform.engines.spark import session as engine
from algo_platform.engines.spark import storage
from algo_platform.quality.contracts import cleaned_events_rules, item_features_rules, user_features_rules
from algo_platform.quality.suites import SuiteVerdict, validate
from algo_platform.quality.summaries import (
    Json,
    Markdown,
    all_rows_dropped,
    cleaned_events_summary,
    feature_summary,
    plain,
)

# The suites and rules are the polars steps' own: one definition of "valid" for both engines.
CLEANED, USERS, ITEMS = "cleaned_events", "user_features", "item_features"


def _pipes_value(value: Any) -> Any:
    """A summary's value as Pipes carries it: {type, raw_value} for the rich kinds, NaN as no value."""
    if isinstance(value, Markdown):
        return {"type": "md", "raw_value": value.text}
    if isinstance(value, Json):
        return {"type": "json", "raw_value": value.value}
    return plain(value)


def _pipes_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: _pipes_value(value) for key, value in metadata.items()}


def driver_conf(extras: dict[str, Any]) -> dict[str, str]:
    """The launcher's Spark settings, plus where executors reach this driver when it is a pod and
    the template Spark builds executor pods from (the driver reads it from a local file)."""
    conf = dict(extras.get("conf") or {})
    if os.environ.get("SPARK_DRIVER_POD_IP"):
        conf["spark.driver.host"] = os.environ["SPARK_DRIVER_POD_IP"]
        # Executors are owned by the driver pod: they go when it goes.
        conf["spark.kubernetes.driver.pod.name"] = os.environ.get("HOSTNAME", "")
    template = extras.get("executor_pod_template")
    if template:
        # JSON is YAML: Spark parses the file as a pod manifest.
        with tempfile.NamedTemporaryFile("w", prefix="executor-pod-", suffix=".json", delete=False) as file:
            json.dump(template, file)
        conf["spark.kubernetes.executor.podTemplateFile"] = file.name
        conf["spark.kubernetes.executor.podTemplateContainerName"] = template["spec"]["containers"][0]["name"]
    return conf


def run(pipes: PipesContext) -> None:
    extras = pipes.extras
    day, now = dt.date.fromisoformat(extras["day"]), dt.datetime.fromisoformat(extras["now"])
    keys, paths = extras["asset_keys"], extras["paths"]
    quality = extras["data_quality"]  # the pipeline's DataQuality settings
    spark = engine.session(f"algo-platform {keys[CLEANED]} {day}", extras.get("master"), driver_conf(extras))
    spark.sparkContext.setLogLevel("WARN")

    raw = storage.read(spark, paths["raw_events"])
    rows_in = raw.count()
    cleaned, drops = engine.clean(raw, day, now)
    pipes.log.info(f"{day}: cleaning {rows_in:,} raw rows on Spark ({spark.sparkContext.master})")
    storage.write(cleaned, paths[CLEANED])
    # The cleaning cached the raw day and its flags; the features need only the stored table.
    spark.catalog.clearCache()
    cleaned = storage.read(spark, paths[CLEANED]).cache()
    kept = cleaned.count()
    if rows_in and not kept:
        raise RuntimeError(all_rows_dropped(day, rows_in, drops))
    _report_cleaned(pipes, keys[CLEANED], cleaned, rows_in, kept, drops, day, now, quality)
    _report_suite(pipes, keys[CLEANED], quality, cleaned, cleaned_events_rules(day), "cleaned_events_suite")

    for name, build, rules, suite in (
        (USERS, engine.user_features, user_features_rules(), "user_features_suite"),
        (ITEMS, engine.item_features, item_features_rules(), "item_features_suite"),
    ):
        storage.write(build(cleaned), paths[name])
        table = storage.read(spark, paths[name]).cache()
        _report_features(pipes, keys[name], table)
        _report_suite(pipes, keys[name], quality, table, rules, suite)
    spark.stop()


def _report_cleaned(pipes, key, cleaned, rows_in, kept, drops, day, now, quality) -> None:
    lateness = dt.timedelta(minutes=quality["allowed_lateness_minutes"])
    counts = cleaned.agg(
        engine.F.countDistinct("user_id").alias("users"), engine.F.countDistinct("item_id").alias("items")
    ).collect()[0]
    summary = cleaned_events_summary(
        rows_in=rows_in,
        rows_kept=kept,
        dropped=drops,
        dimensions=engine.quality_dimensions(cleaned, day, now, lateness),
        profile=engine.distribution_profile(cleaned),
        users=counts["users"],
        items=counts["items"],
        preview=cleaned.limit(10).toPandas(),
    )
    pipes.report_asset_materialization(asset_key=key, metadata=_pipes_metadata({**summary, "engine": "spark"}))


def _report_features(pipes, key, table) -> None:
    F = engine.F
    means = table.agg(
        F.count("*").alias("rows"),
        F.avg("mean_watch_ratio").alias("mean_watch_ratio"),
        F.avg("like_rate").alias("mean_like_rate"),
        F.avg("skip_rate").alias("mean_skip_rate"),
    ).collect()[0]
    summary = feature_summary(
        rows=means["rows"],
        mean_watch_ratio=means["mean_watch_ratio"],
        like_rate=means["mean_like_rate"],
        skip_rate=means["mean_skip_rate"],
        top=table.orderBy(F.col("events").desc()).limit(10).toPandas(),
    )
    pipes.report_asset_materialization(asset_key=key, metadata=_pipes_metadata({**summary, "engine": "spark"}))


def _report_suite(pipes, key, quality, frame, rules, suite_name: str) -> None:
    verdict = SuiteVerdict.of(validate(frame, rules, suite_name, quality["examples_per_expectation"]), suite_name)
    pipes.report_asset_check(
        check_name=suite_name,
        passed=verdict.passed,
        severity="ERROR" if verdict.blocking else "WARN",
        asset_key=key,
        metadata={
            "description": verdict.description,
            **verdict.counts,
            "results": {"type": "md", "raw_value": verdict.results_markdown},
            "unexpected_counts": {"type": "json", "raw_value": verdict.unexpected_counts},
        },
    )


def main() -> None:
    with open_dagster_pipes() as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
