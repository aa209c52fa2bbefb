"""The whole graph on object storage: an S3-compatible server (moto in server mode) on 127.0.0.1,
credentials from the environment only, ALGO_PLATFORM_STORAGE=s3://bucket/prefix."""

import datetime as dt
import time

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from algo_platform.core.layout import ProjectLayout
from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from tests.support.factories import END_DAY, PROJECT, ingest_and_retrain, make_project
from tests.support.s3_server import start_object_store

DAYS = 3
TABLES = ("raw_events", "cleaned_events", "user_features", "item_features")


def with_store_environment(store, patch: pytest.MonkeyPatch) -> None:
    for name, value in store.environment.items():
        patch.setenv(name, value)


@pytest.fixture(scope="module")
def store():
    store, stop = start_object_store()
    patch = pytest.MonkeyPatch()
    with_store_environment(store, patch)
    yield store
    patch.undo()
    stop()


@pytest.fixture(scope="module")
def s3_pipeline(store, tmp_path_factory):
    home = tmp_path_factory.mktemp("s3-home")
    settings = Settings(env="local", storage_root=f"s3://{store.bucket}/platform", dagster_home=str(home))
    root = settings.layout.project(PROJECT).root
    days = generate(root, DAYS, 2_000, seed=5, defect_rate=0.02, end_date=END_DAY)
    # A broken upload next to the good file of the last day: quarantined on the store, the day still flows.
    (ProjectLayout(root).landing_day(END_DAY.isoformat()) / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    defs = build_project_definitions(make_project(window_days=DAYS), settings)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        ingest, retrain = ingest_and_retrain(defs, days, instance, epochs=2)
        yield {"settings": settings, "days": days, "ingest": ingest, "retrain": retrain, "home": home}


def test_every_table_model_report_and_artifact_is_an_object_in_the_bucket(s3_pipeline, store):
    assert all(run.success for run in s3_pipeline["ingest"]) and s3_pipeline["retrain"].success
    keys = store.object_keys("platform/")
    project = f"platform/projects/{PROJECT}"
    for table in TABLES:
        assert {f"{project}/{table}/{d.day}.parquet" for d in s3_pipeline["days"]} <= set(keys), table
    day = END_DAY.isoformat()
    for asset in ("training_sequences", "item_vocabulary", "evaluation_report", "user_recommendations"):
        assert f"{project}/{asset}/{day}.parquet" in keys, asset
    assert any(k.startswith(f"{project}/models/sequence_model/{day}/") and k.endswith("/model.pt") for k in keys)
    assert any(k.startswith(f"{project}/models/sequence_model/{day}/") and k.endswith("/checkpoint.pt") for k in keys)
    assert any(k.startswith(f"{project}/reports/evaluation/{day}/") for k in keys)
    assert any(k.startswith("platform/mlflow/artifacts/") and k.endswith("/MLmodel") for k in keys)
    assert f"{project}/quarantine/events/{day}/broken.parquet" in keys
    assert f"{project}/quarantine/events/{day}/broken.parquet.reason.json" in keys
    # Writers land by rename: no temp object is left behind.
    assert not [k for k in keys if "/.tmp-" in k]
    # Nothing of the data went to local disk: the instance folder holds only Dagster's and MLflow's databases.
    local = [p for p in s3_pipeline["home"].rglob("*") if p.suffix in (".parquet", ".pt", ".json", ".html")]
    assert local == []


def test_cleaned_events_on_the_store_hold_every_good_row(s3_pipeline):
    root = UPath(s3_pipeline["settings"].layout.project(PROJECT).root)
    for generated in s3_pipeline["days"]:
        cleaned = pd.read_parquet((root / "cleaned_events" / f"{generated.day}.parquet").open("rb"))
        assert len(cleaned) == generated.rows - sum(generated.defects.values())
        assert cleaned["event_id"].is_unique


def test_the_champion_loads_from_the_store_with_mlflows_own_api(s3_pipeline):
    import mlflow

    from algo_platform.resources.environment import build_resources

    tracking = build_resources(s3_pipeline["settings"], make_project(window_days=DAYS))["experiment_tracking"]
    mlflow.set_tracking_uri(tracking.tracking_uri)
    mlflow.set_registry_uri(tracking.tracking_uri)
    recommender = mlflow.pyfunc.load_model(f"models:/{tracking.registered_model_name}@champion")
    top = recommender.predict(pd.DataFrame({"item_ids": [[1, 2, 3]]}))
    assert len(top["item_ids"][0]) == 20


def test_a_store_that_stops_mid_write_fails_the_run_clearly_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    store, stop = start_object_store()
    try:
        with_store_environment(store, monkeypatch)
        settings = Settings(env="local", storage_root=f"s3://{store.bucket}/platform", dagster_home=str(tmp_path))
        day = END_DAY.isoformat()
        generate(settings.layout.project(PROJECT).root, 1, 5_000, seed=3, end_date=END_DAY)
        defs = build_project_definitions(make_project(window_days=2), settings)
        cleaned = f"platform/projects/{PROJECT}/cleaned_events/"
        before = store.object_keys()
        # The store goes away the moment cleaned_events starts to write its table.
        store.relay.cut_on = f"/{cleaned}".encode()
        with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
            job = defs.resolve_job_def(f"{PROJECT}_ingest_job")
            result = job.execute_in_process(partition_key=day, instance=instance, raise_on_error=False)
            assert not result.success
            failure = next(e for e in result.all_events if e.is_step_failure)
            message = failure.step_failure_data.error.message
            assert failure.step_key.endswith("cleaned_events")
            assert "The object store stopped answering while writing team_a/cleaned_events" in message
            assert store.endpoint in message and "Re-execute the run" in message

            # Nothing half-written: the store holds what it held before the run plus raw_events, no
            # cleaned table and no materialization was recorded for one.
            after = store.object_keys()
            assert not [k for k in after if k.startswith(cleaned) and not k.split("/")[-1].startswith(".")]
            assert set(before) <= set(after)
            key = dg.AssetKey([PROJECT, "cleaned_events"])
            assert instance.get_latest_materialization_event(key) is None

            # Back on the same address, the same run goes through.
            store.relay.restore()
            assert job.execute_in_process(partition_key=day, instance=instance).success
            assert f"{cleaned}{day}.parquet" in store.object_keys()
    finally:
        stop()


def test_the_sensor_lists_the_store_in_one_go_and_finds_late_files_of_old_days_at_the_full_sweep(store, monkeypatch):
    from algo_platform.ingest import landing
    from algo_platform.jobs import automation
    from algo_platform.resources.partitions import project_partitions

    root = f"s3://{store.bucket}/sensor"
    today = dt.datetime.now(dt.UTC).date()
    old, recent = (today - dt.timedelta(days=30)).isoformat(), (today - dt.timedelta(days=2)).isoformat()
    partitions = project_partitions((today - dt.timedelta(days=60)).isoformat())

    def land(day: str, name: str) -> None:
        (ProjectLayout(root).landing_day(day) / name).write_bytes(b"user_id,item_id,ts\n1,2,3\n")

    listed: list[int] = []
    list_objects = landing._list_objects
    monkeypatch.setattr(landing, "_list_objects", lambda *args: listed.append(len(out := list_objects(*args))) or out)

    def tick(cursor, seconds_later: float = 0):
        monkeypatch.setattr(automation, "_now_ns", lambda: time.time_ns() + int(seconds_later * 1e9))
        return automation.scan_landing_zone(root, cursor, partitions, settle_seconds=0)

    for day in (old, recent):
        land(day, "a.csv")
    first = tick(None)
    assert sorted(first.to_ingest) == [old, recent] and listed == [2]
    # The next ticks list the recent days only: a new file there is found at once...
    land(recent, "b.csv")
    second = tick(first.cursor)
    assert list(second.to_ingest) == [recent] and listed[-1] == 2
    # ...a late file for a day a month back waits for the hourly full listing, and is not lost.
    land(old, "late.csv")
    third = tick(second.cursor)
    assert third.to_ingest == {} and listed[-1] == 2
    swept = tick(third.cursor, automation.FULL_SWEEP_SECONDS + 1)
    assert list(swept.to_ingest) == [old] and listed[-1] == 4
