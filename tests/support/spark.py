"""Spark in tests: skipping without Java, and one day ingested by each engine, compared."""

import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from algo_platform.resources.io_managers import read_table
from tests.support.factories import END_DAY, make_project


def skip_without_java() -> None:
    """Skip the test without a Java runtime; fail it instead under REQUIRE_SPARK=1."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        reason = "no Java runtime (apt-get install openjdk-17-jre-headless)"
        if os.environ.get("REQUIRE_SPARK") == "1":
            pytest.fail(f"REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)


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
