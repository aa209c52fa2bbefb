"""The Spark engine gives what the polars engine gives: the same cleaned and feature tables, drop
counts per reason, quality metadata and check outcomes, on one input with every defect kind. A
Spark project's day through Dagster (the launcher, Pipes, the stored tables) is compared with a
polars project's in test_spark_object_storage.py, on the harder storage.

Spark runs in local mode on Java 17. Skips when no Java is installed, fails instead when
REQUIRE_SPARK=1 (.ci/run installs Java and sets it).
"""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from upath import UPath

from algo_platform.assets.features import build_item_features, build_user_features
from algo_platform.engines.polars.cleaning import clean_table
from algo_platform.quality.contracts import cleaned_events_rules, item_features_rules
from algo_platform.quality.dimensions import distribution_profile, quality_dimensions
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.io_managers import read_table
from tests.support.factories import END_DAY, make_events
from tests.support.spark import assert_same_table, comparable, skip_without_java

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
NOON = pd.Timestamp(END_DAY, tz="UTC") + pd.Timedelta(hours=12)


@pytest.fixture(scope="module")
def spark():
    skip_without_java()
    from algo_platform.engines.spark.session import session

    spark = session("algo-platform tests", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


def every_defect_kind(rows: int = 3_000, seed: int = 11) -> pa.Table:
    """Raw events with each drop reason, resends and collisions, mixed-up text and a rating column."""
    rng = np.random.default_rng(seed)

    def pick(*choices):
        return choices[rng.integers(0, len(choices))]

    events = [
        {
            "event_id": f"id-{rng.integers(0, rows // 2)}",
            "user_id": pick(pd.NA, 0, *range(1, 40)),
            "item_id": pick(pd.NA, -3, *range(1, 30)),
            "event_type": pick("play", " LIKE", "Skip\t", "share", None, "clickk"),
            "watch_ms": pick(-5, pd.NA, *range(0, 20_000, 997)),
            "item_duration_ms": pick(0, pd.NA, *range(1_000, 30_000, 1_013)),
            "ts": pick(pd.NaT, NOON + pd.Timedelta(days=3650), NOON - pd.Timedelta(days=1), *[NOON] * 20)
            + pd.Timedelta(seconds=int(rng.integers(0, 40_000))),
            "device": pick("ios", " Android ", None, "WEB"),
            "topic": pick("music", "Sports", None, "food "),
        }
        for _ in range(rows)
    ]
    events += [events[i] for i in rng.integers(0, len(events), rows // 10)]  # resends: exact copies
    frame = make_events(events).drop(columns="source_file")
    frame["rating"] = rng.choice([0.5, 3.0, 4.5, np.nan], len(frame))
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.mark.parametrize("raw_of", ["every_defect_kind", "generated_day"])
def test_spark_cleans_and_summarises_exactly_as_polars(spark, tmp_path, raw_of):
    from algo_platform.engines.spark import session as engine
    from benchmarks.suite import raw_table

    raw = every_defect_kind() if raw_of == "every_defect_kind" else raw_table(20_000, defect_rate=0.05)
    pq.write_table(raw, tmp_path / "raw.parquet")
    cleaned, drops = clean_table(raw, END_DAY, NOW)

    spark_cleaned, spark_drops = engine.clean(spark.read.parquet(str(tmp_path / "raw.parquet")), END_DAY, NOW)
    spark_cleaned.write.parquet(str(tmp_path / "cleaned.parquet"))
    stored = spark.read.parquet(str(tmp_path / "cleaned.parquet"))

    assert spark_drops == drops
    assert drops["duplicate_event_id"] and drops["missing_user_id"]
    if raw_of == "every_defect_kind":
        assert all(drops.values()), drops  # every reason is exercised
    polars_cleaned = cleaned.to_pandas()
    assert_same_table(polars_cleaned, read_table(UPath(tmp_path / "cleaned.parquet")).to_pandas())
    assert_same_table(build_user_features(cleaned), engine.user_features(stored).toPandas())
    assert_same_table(build_item_features(cleaned), engine.item_features(stored).toPandas())

    lateness = dt.timedelta(hours=1)
    polars_dims = quality_dimensions(polars_cleaned, END_DAY, NOW, lateness)
    assert engine.quality_dimensions(stored, END_DAY, NOW, lateness) == pytest.approx(polars_dims)
    spark_profile, polars_profile = engine.distribution_profile(stored), distribution_profile(polars_cleaned)
    assert spark_profile.keys() == polars_profile.keys()
    for part, shares in polars_profile.items():
        assert spark_profile[part] == pytest.approx(shares), part


def test_quality_suites_give_the_same_outcomes_on_spark_as_on_pandas(spark):
    """GX's Spark datasource judges each rule as the pandas one does, failures included."""
    raw = every_defect_kind()
    cleaned, _ = clean_table(raw, END_DAY, NOW)
    frame = cleaned.to_pandas()
    broken = frame.assign(watch_ms=frame["watch_ms"].where(frame.index % 7 != 0, -1))
    quality = DataQuality()
    for table, rules in ((frame, cleaned_events_rules(END_DAY)), (broken, cleaned_events_rules(END_DAY))):
        on_pandas = quality.validate(table, rules, "suite")
        on_spark = quality.validate(spark.createDataFrame(comparable(table)), rules, "suite")
        assert [(o.rule, o.passed, o.unexpected_count) for o in on_spark] == [
            (o.rule, o.passed, o.unexpected_count) for o in on_pandas
        ]
    assert not all(o.passed for o in quality.validate(broken, cleaned_events_rules(END_DAY), "suite"))
    items = build_item_features(cleaned)
    on_spark = quality.validate(spark.createDataFrame(comparable(items)), item_features_rules(), "items")
    assert [o.passed for o in on_spark] == [o.passed for o in quality.validate(items, item_features_rules(), "items")]
