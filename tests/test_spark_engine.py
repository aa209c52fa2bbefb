"""The Spark engine gives what the polars engine gives: the same cleaned and feature tables, drop
counts per reason, quality metadata and check outcomes, on one input with every defect kind.

Spark runs in local mode on Java 17. Skips when no Java is installed, fails instead when
REQUIRE_SPARK=1 (.ci/run installs Java and sets it).
"""

import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from upath import UPath

from algo_platform.core.settings import Settings
from algo_platform.engines.polars.cleaning import clean_table
from algo_platform.ingest.datagen import generate
from algo_platform.pipeline.assets.features import build_item_features, build_user_features
from algo_platform.pipeline.location import build_project_definitions
from algo_platform.pipeline.resources.data_quality import DataQuality
from algo_platform.pipeline.resources.io_managers import read_table
from algo_platform.quality.contracts import cleaned_events_rules, item_features_rules
from algo_platform.quality.dimensions import distribution_profile, quality_dimensions
from tests.conftest import END_DAY, make_events, make_project

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
NOON = pd.Timestamp(END_DAY, tz="UTC") + pd.Timedelta(hours=12)


def skip_without_java() -> None:
    """Skip the test without a Java runtime; fail it instead under REQUIRE_SPARK=1."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        reason = "no Java runtime (apt-get install openjdk-17-jre-headless)"
        if os.environ.get("REQUIRE_SPARK") == "1":
            pytest.fail(f"REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)


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


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as both engines' readers give them: text as str, numbers as float, times as UTC µs."""
    frame = frame.reset_index(drop=True).copy()
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or values.dtype == "string":
            frame[column] = values.astype(str)
        elif pd.api.types.is_datetime64_any_dtype(values):
            frame[column] = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            frame[column] = values.astype("float64")
    return frame


def assert_same_table(polars_side: pd.DataFrame, spark_side: pd.DataFrame) -> None:
    assert list(spark_side.columns) == list(polars_side.columns)
    pd.testing.assert_frame_equal(
        comparable(spark_side), comparable(polars_side), check_dtype=False, check_exact=False, rtol=1e-12
    )


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


def ingest_one_day(tmp_path: Path, engine: str, storage_root: str | None = None) -> tuple[dict, UPath]:
    """One day ingested by a project on `engine`; its materializations' metadata and check results."""
    project = make_project(data={"engine": engine})
    settings = Settings(env="local", storage_root=storage_root or str(tmp_path / engine))
    root = UPath(settings.layout.project(project.name).root)
    generate(str(root), 1, 3_000, seed=3, defect_rate=0.05, end_date=END_DAY)
    defs = build_project_definitions(project, settings)
    (tmp_path / f"{engine}-home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / f"{engine}-home")) as instance:
        job = defs.resolve_job_def(f"{project.name}_ingest_job")
        result = job.execute_in_process(partition_key=END_DAY.isoformat(), instance=instance)
        assert result.success
        metadata = {}
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            metadata[materialization.asset_key.path[-1]] = {k: v.value for k, v in materialization.metadata.items()}
        checks = {
            evaluation.check_name: (evaluation.passed, evaluation.severity)
            for evaluation in result.get_asset_check_evaluations()
        }
        outcome = {"metadata": metadata, "checks": checks}
    return outcome, root


def test_a_spark_project_ingests_a_day_as_a_polars_project_does(spark, tmp_path):
    on_polars, polars_root = ingest_one_day(tmp_path, "polars")
    on_spark, spark_root = ingest_one_day(tmp_path, "spark")
    assert_same_ingest(on_polars, polars_root, on_spark, spark_root)


def assert_same_ingest(on_polars: dict, polars_root: UPath, on_spark: dict, spark_root: UPath) -> None:
    """The same checks, counts, quality and stored tables from both engines."""
    assert on_spark["checks"] == on_polars["checks"]
    assert {"cleaned_events_suite", "user_features_suite", "item_features_suite"} <= set(on_spark["checks"])
    polars_cleaned, spark_cleaned = on_polars["metadata"]["cleaned_events"], on_spark["metadata"]["cleaned_events"]
    counts = [key for key in polars_cleaned if key.startswith(("rows_", "dropped_")) and key != "dropped_by_reason"]
    assert {k: spark_cleaned[k] for k in counts} == {k: polars_cleaned[k] for k in counts}
    assert spark_cleaned["rows_dropped"] > 0 and spark_cleaned["engine"] == "spark"
    for key in ("quality_score", "users", "items", "dagster/row_count"):
        assert spark_cleaned[key] == pytest.approx(polars_cleaned[key]), key
    for table in ("cleaned_events", "user_features", "item_features"):
        assert on_spark["metadata"][table]["dagster/row_count"] == on_polars["metadata"][table]["dagster/row_count"]
        stored = {
            engine: read_table(root / table / f"{END_DAY}.parquet").to_pandas()
            for engine, root in (("polars", polars_root), ("spark", spark_root))
        }
        assert (spark_root / table / f"{END_DAY}.parquet").is_dir()  # Spark's part files, read as one table
        assert_same_table(stored["polars"], stored["spark"])
