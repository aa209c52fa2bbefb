"""A day with more rows than the platform cleans in memory goes through the same assets in parts
(Parquet to Parquet): the stored tables, the drop counts and the quality metadata are the ones a
day cleaned in memory gets."""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from algo_platform.assets.events import build_ingest_assets
from algo_platform.assets.features import build_feature_assets
from algo_platform.core.settings import Settings
from algo_platform.engines.polars import large_day
from algo_platform.ingest.datagen import generate
from algo_platform.resources.environment import build_resources
from tests.support.factories import END_DAY, PROJECT, make_project, project_assets

DAY = END_DAY.isoformat()
TABLES = ("cleaned_events", "user_features", "item_features")


def ingest(root: Path) -> tuple[Settings, dg.ExecuteInProcessResult]:
    settings = Settings(env="local", storage_root=str(root / "storage"))
    generate(settings.layout.project(PROJECT).root, 1, 6_000, seed=3, defect_rate=0.05, end_date=END_DAY)
    project = make_project()
    result = dg.materialize(
        project_assets(project, build_ingest_assets, build_feature_assets),
        partition_key=DAY,
        resources=build_resources(settings, project),
    )
    return settings, result


def stored(settings: Settings, asset: str) -> pd.DataFrame:
    return pd.read_parquet(Path(settings.layout.project(PROJECT).root) / asset / f"{DAY}.parquet")


def cleaned_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "cleaned_events"]
    return {key: value.value for key, value in event.materialization.metadata.items() if key not in ("preview", "path")}


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
    return ingest(tmp_path_factory.mktemp("in_memory"))


def test_a_day_above_the_in_memory_limit_is_cleaned_in_parts_with_the_same_results(in_memory, tmp_path, monkeypatch):
    monkeypatch.setattr(large_day, "LARGEST_DAY_IN_MEMORY", 1_000)
    monkeypatch.setattr(large_day, "ROWS_PER_PART", 1_500)  # several parts: dedup buckets, user ranges
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()

    settings, result = ingest(tmp_path)

    assert result.success
    memory_settings, memory_result = in_memory
    parts, whole = cleaned_metadata(result), cleaned_metadata(memory_result)
    assert (parts.pop("cleaned"), whole.pop("cleaned")) == ("in parts of 1,500 rows, Parquet to Parquet", "in memory")
    for asset in TABLES:
        pd.testing.assert_frame_equal(stored(settings, asset), stored(memory_settings, asset), check_exact=False)
    assert parts["rows_dropped"] > 0 and parts.keys() == whole.keys()
    for key, value in whole.items():
        if key == "profile":
            assert {k: pytest.approx(v) for k, v in value.items()} == parts[key]
        else:
            assert parts[key] == pytest.approx(value) if isinstance(value, float) else parts[key] == value, key
    assert list((tmp_path / "scratch").rglob("*.parquet")) == []  # the staged file was moved into place
    assert checks(result) == checks(memory_result)
    assert checks(result)[("cleaned_events", "cleaned_events_suite")]


def checks(result: dg.ExecuteInProcessResult) -> dict:
    return {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
