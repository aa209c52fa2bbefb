"""The data stage on Spark: the same cleaning and features as `cleaning.py` and `features.py`, as
PySpark DataFrames, for days beyond one machine.

Every rule mirrors its polars twin (tests/system/test_spark_engine.py compares the tables, drop counts
and check outcomes on one input). Landing order decides the first arrival: the raw day is one
Parquet file, and Spark reads its row groups in order into partitions whose ids increase with the
offset, so `monotonically_increasing_id` follows the file's row order.
"""

import datetime as dt
import math
import os
import sys

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from algo_platform.core.schema import CANONICAL_COLUMNS, EVENT_TYPES, REQUIRED_COLUMNS
from algo_platform.engines.polars.cleaning import EVENT_CONTENT, LOW_CARDINALITY_TEXT, ROW_REASONS
from algo_platform.engines.polars.features import COMPLETION_THRESHOLD, RATE_KINDS, TOP_TOPICS
from algo_platform.engines.spark.storage import StoredParquet
from algo_platform.quality.dimensions import EVENTS_PER_USER_BINS, FUTURE_TOLERANCE, WATCH_RATIO_BINS, bin_labels

ROW = "_row"
REASON = "_reason"
_ORIGINAL = "_original"
# Java's \s with (?U) is Unicode White_Space, as polars' strip_chars() trims (Spark's trim: spaces only).
_EDGE_WHITESPACE = r"(?U)^\s+|\s+$"


# Local mode on a small machine: a few shuffle partitions, not Spark's 200 (each is a task).
LOCAL_CONF = {"spark.sql.shuffle.partitions": "8", "spark.ui.showConsoleProgress": "false", "spark.ui.enabled": "false"}


def session(app_name: str = "algo-platform", master: str | None = None, conf: dict[str, str] | None = None):
    """A Spark session in UTC (timestamps compare as the polars engine compares them)."""
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        # Timestamps as Parquet's standard INT64 micros (not INT96): Arrow reads them as UTC instants.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # toPandas through Arrow: the row-by-row path repeats one string per column under pandas 3.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if master is None or master.startswith("local"):
        conf = {**LOCAL_CONF, **(conf or {})}
        # Python workers (the object-store data source) run this interpreter, with its packages;
        # PySpark reads the setting from the environment when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master:
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.dataSource.register(StoredParquet)  # tables on an object store (spark_storage.py)
    return spark


def normalised_text(column: str, missing: str) -> Column:
    text = F.lower(F.regexp_replace(F.col(column).cast("string"), _EDGE_WHITESPACE, ""))
    return F.coalesce(text, F.lit(missing))


def _first_failing_rule(day: dt.date, now: dt.datetime) -> Column:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    ts = F.col("ts")
    failing = {
        "missing_user_id": F.col("user_id").isNull(),
        "missing_item_id": F.col("item_id").isNull(),
        "non_positive_user_id": F.col("user_id") <= 0,
        "non_positive_item_id": F.col("item_id") <= 0,
        "missing_ts": ts.isNull(),
        "unknown_event_type": ~normalised_text("event_type", "play").isin(list(EVENT_TYPES)),
        "negative_watch_ms": F.col("watch_ms") < 0,
        "invalid_item_duration": F.col("item_duration_ms") <= 0,
        "future_timestamp": ts > F.lit(now + FUTURE_TOLERANCE),
        "outside_partition_day": (ts < F.lit(start)) | (ts >= F.lit(start + dt.timedelta(days=1))),
    }
    assert tuple(failing) == ROW_REASONS
    chain = None
    for code, condition in enumerate(failing.values()):
        # A null condition (a missing optional value) is not a failure, as in polars.
        condition = F.coalesce(condition, F.lit(False))
        chain = F.when(condition, code) if chain is None else chain.when(condition, code)
    return chain


def clean(raw: DataFrame, day: dt.date, now: dt.datetime) -> tuple[DataFrame, dict[str, int]]:
    """The cleaned events (sorted by user, time and landing order) and dropped rows per reason."""
    typed = raw.withColumn(ROW, F.monotonically_increasing_id()).withColumn(REASON, _first_failing_rule(day, now))
    typed = typed.persist()
    reasons = {row[REASON]: row["count"] for row in typed.groupBy(REASON).count().collect()}
    valid = typed.where(F.col(REASON).isNull()).drop(REASON)
    first_row = F.min(ROW).over(Window.partitionBy("event_id"))
    flagged = valid.withColumn("_first", F.col(ROW) == first_row).persist()
    repeats = flagged.where(~F.col("_first"))
    originals = flagged.where("_first").select("event_id", *(F.col(c).alias(f"{c}{_ORIGINAL}") for c in EVENT_CONTENT))
    same = F.lit(True)
    for column in EVENT_CONTENT:
        same = same & F.col(column).eqNullSafe(F.col(f"{column}{_ORIGINAL}"))
    repeat_count = repeats.count()
    # Rows with a null id never match (as in polars' join): they count as resends.
    collisions = repeats.join(originals, "event_id").where(~same).count()
    drops = {reason: int(reasons.get(code, 0)) for code, reason in enumerate(ROW_REASONS)}
    drops |= {"duplicate_event_id": repeat_count - collisions, "event_id_collision": collisions}
    extras = [c for c in raw.columns if c not in (*CANONICAL_COLUMNS, "source_file")]
    typed_columns = {
        "user_id": F.col("user_id").cast("long"),
        "item_id": F.col("item_id").cast("long"),
        "event_type": normalised_text("event_type", "play"),
        **{name: normalised_text(name, missing) for name, missing in LOW_CARDINALITY_TEXT.items()},
    }
    cleaned = (
        flagged.where("_first")
        .orderBy("user_id", "ts", ROW)
        .select(*(typed_columns.get(c, F.col(c)).alias(c) for c in CANONICAL_COLUMNS), *extras)
    )
    return cleaned, drops


def _engagement() -> list[Column]:
    watch = F.col("watch_ms")
    ratio = watch / F.col("item_duration_ms")
    # Spark's least/greatest skip nulls; an unknown ratio stays unknown, as in polars' clip.
    ratio = F.when(ratio.isNotNull(), F.least(F.greatest(ratio, F.lit(0.0)), F.lit(5.0)))
    is_kind = {kind: (F.col("event_type") == kind).cast("long") for kind in EVENT_TYPES}
    return [
        F.count("*").alias("events"),
        F.sum(watch).alias("total_watch_ms"),
        F.avg(ratio).alias("mean_watch_ratio"),
        F.avg(F.coalesce(ratio >= COMPLETION_THRESHOLD, F.lit(False)).cast("double")).alias("completion_rate"),
        *(F.sum(flag).alias(f"{kind}s") for kind, flag in is_kind.items()),
        *(F.avg(is_kind[kind].cast("double")).alias(f"{kind}_rate") for kind in RATE_KINDS),
    ]


def _top_values(events: DataFrame, key: str, column: str, weight: Column, top: int, name: str) -> DataFrame:
    """The `top` values of `column` per `key` by total weight, ties by value, joined with ", "."""
    totals = events.groupBy(key, column).agg(F.sum(weight).alias("_weight"))
    order = Window.partitionBy(key).orderBy(F.col("_weight").desc(), F.col(column).asc())
    ranked = totals.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") <= top)
    picked = F.array_sort(F.collect_list(F.struct("_rank", column)))
    return ranked.groupBy(key).agg(F.concat_ws(", ", F.transform(picked, lambda s: s[column])).alias(name))


def user_features(events: DataFrame) -> DataFrame:
    watch_weight = F.greatest(F.coalesce(F.col("watch_ms"), F.lit(0)), F.lit(0)).cast("double") + 1.0
    return (
        events.groupBy("user_id")
        .agg(
            *_engagement(),
            F.countDistinct("item_id").alias("distinct_items"),
            F.min("ts").alias("first_ts"),
            F.max("ts").alias("last_ts"),
        )
        .join(_top_values(events, "user_id", "device", F.lit(1.0), 1, "main_device"), "user_id", "left")
        .join(_top_values(events, "user_id", "region", F.lit(1.0), 1, "main_region"), "user_id", "left")
        .join(_top_values(events, "user_id", "topic", watch_weight, TOP_TOPICS, "top_topics"), "user_id", "left")
        .orderBy("user_id")
    )


def _popularity_ranks(items: DataFrame) -> DataFrame:
    """Competition rank by events (1 + the items with more events), per distinct event count.

    A window ordered over all items would send every item through one task; only the distinct
    counts go through one here, and they are few: d distinct counts add up to at most the day's
    events, so d(d+1)/2 <= events (under 45,000 at a billion)."""
    per_count = items.groupBy("events").agg(F.count("*").alias("_items"))
    more_events = Window.orderBy(F.col("events").desc()).rowsBetween(Window.unboundedPreceding, -1)
    rank = F.coalesce(F.sum("_items").over(more_events), F.lit(0)) + 1
    return per_count.select("events", rank.cast("int").alias("popularity_rank"))


def item_features(events: DataFrame) -> DataFrame:
    items = events.groupBy("item_id").agg(
        *_engagement(),
        F.countDistinct("user_id").alias("unique_users"),
        F.median("item_duration_ms").alias("item_duration_ms"),
    )
    topic = _top_values(events, "item_id", "topic", F.lit(1.0), 1, "topic")
    with_topic = items.join(topic, "item_id", "left")
    ranked = with_topic.join(F.broadcast(_popularity_ranks(items)), "events")
    columns = [c for c in with_topic.columns if c != "item_duration_ms"]
    return ranked.select(*columns, "item_duration_ms", "popularity_rank").orderBy("popularity_rank", "item_id")


def quality_dimensions(events: DataFrame, day: dt.date, now: dt.datetime, allowed_lateness: dt.timedelta) -> dict:
    """`quality.quality_dimensions` as one Spark aggregation (same formulas, same keys)."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    watch, duration, ts = F.col("watch_ms"), F.col("item_duration_ms"), F.col("ts")

    def share(condition: Column) -> Column:
        return F.avg(F.coalesce(condition, F.lit(False)).cast("double"))

    nulls = sum((F.col(c).isNull().cast("long") for c in REQUIRED_COLUMNS), F.lit(0))
    row = events.agg(
        F.count("*").alias("rows"),
        share((watch.isNull() | (watch >= 0)) & (duration.isNull() | (duration > 0))).alias("accuracy"),
        F.sum(nulls).alias("nulls"),
        share(
            (F.col("event_type").isNull() | F.col("event_type").isin(list(EVENT_TYPES)))
            & (F.col("user_id").isNull() | (F.col("user_id") > 0))
            & (F.col("item_id").isNull() | (F.col("item_id") > 0))
        ).alias("relevance"),
        share(
            (ts >= F.lit(start - allowed_lateness))
            & (ts < F.lit(start + dt.timedelta(days=1)))
            & (ts <= F.lit(now + FUTURE_TOLERANCE))
        ).alias("timeliness"),
    ).collect()[0]
    if row["rows"] == 0:
        return {"accuracy": 1.0, "completeness": 1.0, "relevance": 1.0, "timeliness": 1.0, "quality_score": 1.0}
    dims = {
        "accuracy": row["accuracy"],
        "completeness": 1.0 - row["nulls"] / (row["rows"] * len(REQUIRED_COLUMNS)),
        "relevance": row["relevance"],
        "timeliness": row["timeliness"],
    }
    dims["quality_score"] = math.prod(dims.values())
    return dims


def _bin_shares(values: DataFrame, column: str, bins: list[float]) -> dict[str, float]:
    labels = bin_labels(bins)
    which = None
    for index, (low, high) in enumerate(zip(bins, bins[1:], strict=False)):
        inside = (F.col(column) >= low) & (F.col(column) < high)
        which = F.when(inside, index) if which is None else which.when(inside, index)
    counts = dict(values.select(which.alias("bin")).where("bin IS NOT NULL").groupBy("bin").count().collect())
    total = sum(counts.values())
    return {label: (counts.get(index, 0) / total if total else 0.0) for index, label in enumerate(labels)}


def distribution_profile(events: DataFrame) -> dict[str, dict[str, float]]:
    """`quality.distribution_profile` on Spark: shares of event types, watch-ratio bins and events per user."""
    types = dict(events.groupBy("event_type").count().collect())
    total = sum(types.values())
    ratio = events.select((F.col("watch_ms") / F.col("item_duration_ms")).alias("ratio")).where("ratio IS NOT NULL")
    per_user = events.groupBy("user_id").count()
    return {
        "event_type": {str(kind): count / total for kind, count in types.items()},
        "watch_ratio": _bin_shares(ratio, "ratio", WATCH_RATIO_BINS),
        "events_per_user": _bin_shares(per_user, "count", EVENTS_PER_USER_BINS),
    }
