"""The whole asset graph, in process, on a temporary instance and storage root."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
import pytest

from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from tests.support.factories import ALL_ASSETS, END_DAY, PROJECT, ingest_and_retrain, make_project, metadata_of

DAYS = 7
EVENTS_PER_DAY = 4_000
DEFECT_RATE = 0.02


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    settings = Settings(env="local", storage_root=str(root / "storage"))
    landing = settings.layout.project(PROJECT).root
    days = generate(landing, DAYS, EVENTS_PER_DAY, seed=11, defect_rate=DEFECT_RATE, end_date=END_DAY)
    defs = build_project_definitions(make_project(window_days=DAYS), settings)
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        ingest, retrain = ingest_and_retrain(defs, days, instance, epochs=5)
        yield {"settings": settings, "days": days, "ingest": ingest, "retrain": retrain, "instance": instance}


def test_every_asset_is_materialized_for_the_latest_day(pipeline):
    instance = pipeline["instance"]
    for asset in ALL_ASSETS:
        record = instance.get_latest_materialization_event(dg.AssetKey([PROJECT, asset]))
        assert record is not None, asset
        assert record.asset_materialization.partition == END_DAY.isoformat()


def test_cleaning_drops_exactly_the_planted_defects(pipeline):
    planted = pipeline["days"][-1].defects
    cleaned = metadata_of(pipeline["ingest"][-1], "cleaned_events")
    assert cleaned["rows_in"] == EVENTS_PER_DAY + planted["duplicate"]
    assert cleaned["rows_dropped"] == sum(planted.values())
    assert cleaned["dropped_duplicate_event_id"] == planted["duplicate"]
    assert cleaned["dropped_negative_watch_ms"] == planted["negative_watch"]
    assert cleaned["dropped_unknown_event_type"] == planted["unknown_event_type"]
    assert cleaned["dropped_future_timestamp"] == planted["future_timestamp"]
    assert cleaned["dropped_missing_user_id"] + cleaned["dropped_missing_item_id"] == planted["null_id"]


def test_feature_tables_are_stored_with_previews(pipeline):
    features = metadata_of(pipeline["ingest"][-1], "user_features")
    assert features["rows"] > 100 and "user_id" in features["preview"].splitlines()[0]
    stored = pd.read_parquet(
        Path(pipeline["settings"].layout.project(PROJECT).root) / "item_features" / f"{END_DAY}.parquet"
    )
    assert {"item_id", "events", "like_rate", "popularity_rank", "topic"} <= set(stored.columns)


def test_model_trained_through_pipes_beats_popularity(pipeline):
    model = metadata_of(pipeline["retrain"], "sequence_model")
    assert len(model["loss_per_epoch"]) == 5 and model["loss_per_epoch"][-1] < model["loss_per_epoch"][0]
    assert Path(model["model_uri"]).exists()
    report = metadata_of(pipeline["retrain"], "evaluation_report")
    assert report["evaluated_targets"] > 1_000
    assert report["model_hr@10"] >= 1.5 * report["popularity_hr@10"]
    assert report["model_ndcg@10"] > report["popularity_ndcg@10"]


def test_training_refuses_a_window_with_missing_days(pipeline, tmp_path):
    settings = Settings(env="local", storage_root=str(tmp_path / "s"))
    generate(settings.layout.project(PROJECT).root, 2, 500, seed=1, end_date=END_DAY)
    defs = build_project_definitions(make_project(window_days=DAYS), settings)
    with dg.instance_for_test() as instance:
        for day in ("2026-11-19", "2026-11-20"):
            defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(partition_key=day, instance=instance)
        result = defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
            partition_key="2026-11-20", instance=instance, raise_on_error=False
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "missing 5: 2026-11-14..2026-11-18 (5 days)" in failure
    assert f"{PROJECT}_ingest_job" in failure
    # One message, not one warning per missing day.
    assert not [e for e in result.all_events if "Couldn't load partition" in (e.message or "")]


@pytest.mark.parametrize("landed", ["nothing", "a header-only file"])
def test_a_day_without_events_is_an_empty_partition_whose_checks_pass(project, settings, landed):
    if landed != "nothing":
        folder = Path(settings.layout.project(PROJECT).root) / "landing" / "events" / "2026-11-20"
        folder.mkdir(parents=True)
        (folder / "quiet.csv").write_text("event_id,user_id,item_id,event_type,ts\n")
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(
            partition_key="2026-11-20", instance=instance
        )
    rows = {
        e.asset_key.path[-1]: e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
    }
    # The day's profile holds what the ingest recorded (rows read, quality), and no day of events.
    profile = pl.read_parquet(Path(settings.layout.project(PROJECT).root) / "data_profile" / "2026-11-20.parquet")
    assert set(profile["section"]) == {"rows_in", "quality"} and rows.pop("data_profile") == profile.height
    assert rows == {"raw_events": 0, "cleaned_events": 0, "user_features": 0, "item_features": 0}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks


def test_mlflow_records_the_run_and_the_registry_traces_the_champion(pipeline):
    from mlflow import MlflowClient

    settings, retrain = pipeline["settings"], pipeline["retrain"]
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias(f"{PROJECT}-next_item", "champion")
    assert str(champion.version) == "1"
    assert (champion.tags["family"], champion.tags["source"]) == ("sasrec", "built-in")  # one model per task
    assert champion.tags["dagster_run_id"] == retrain.run_id
    assert champion.tags["dagster_partition"] == END_DAY.isoformat()
    assert champion.tags["code_version"] and champion.tags["data_window_days"] == str(DAYS)
    run = client.get_run(champion.run_id)
    assert run.data.params["epochs"] == "5" and run.data.params["partition"] == END_DAY.isoformat()
    epochs = len(metadata_of(pipeline["retrain"], "sequence_model")["loss_per_epoch"])
    assert 1 <= epochs <= 5  # early stopping may end before the 5 asked for
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(1, epochs + 1))
    assert run.data.metrics["eval_sequence_model_ndcg_at_10"] > run.data.metrics["eval_popularity_ndcg_at_10"]
    artifacts = {a.path for folder in ("model", "evaluation") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"model/model.pt", "evaluation/report.html"} <= artifacts

    champion_record = metadata_of(retrain, "champion_model")
    lineage = champion_record["lineage"]
    assert lineage["trained_on_partition"] == END_DAY.isoformat() and lineage["hyperparameters"]["epochs"] == 5
    assert lineage["code_version"] == champion.tags["code_version"]


def test_the_evaluation_report_shows_plots_and_writes_html(pipeline):
    report = metadata_of(pipeline["retrain"], "evaluation_report")
    assert report["plots"].count("data:image/png;base64,") == 3
    html = Path(report["report_html"]).read_text()
    assert html.count("<img") == 3 and "Per segment" in html
    assert 0 < report["model_coverage@10"] <= 1 and report["champion_version"] == "none"


def test_recommendations_for_every_active_user(pipeline):
    settings = pipeline["settings"]
    tables = Path(settings.layout.project(PROJECT).root)
    recommendations = pd.read_parquet(tables / "user_recommendations" / f"{END_DAY}.parquet")
    sequences = pd.read_parquet(tables / "training_sequences" / f"{END_DAY}.parquet")
    vocabulary = pd.read_parquet(tables / "item_vocabulary" / f"{END_DAY}.parquet")
    assert set(recommendations["user_id"]) == set(sequences["user_id"])
    assert all(len(items) == 20 and len(set(items)) == 20 for items in recommendations["item_ids"])
    assert set(np.concatenate(recommendations["item_ids"].to_numpy())) <= set(vocabulary["item_id"])
    assert metadata_of(pipeline["retrain"], "user_recommendations")["users_per_second"] > 0
    # Each list says which registered version, and which family, it came from.
    assert set(recommendations["model_version"]) == {"1"} and set(recommendations["model_family"]) == {"sasrec"}


def test_a_weaker_model_is_compared_with_the_champion_and_not_promoted(pipeline):
    defs = build_project_definitions(make_project(window_days=DAYS), pipeline["settings"])
    weaker = defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
        partition_key=END_DAY.isoformat(),
        instance=pipeline["instance"],
        raise_on_error=False,
        run_config={"ops": {"sequence_model": {"config": {"epochs": 1, "hidden_dim": 16}}}},
    )
    report = metadata_of(weaker, "evaluation_report")
    assert report["champion_version"] == "1"
    assert report["champion_ndcg@10"] > report["model_ndcg@10"]
    gate = next(e for e in weaker.get_asset_check_evaluations() if e.check_name == "promotion_gate")
    assert not gate.passed and "keep the champion" in gate.description
    # Keeping the champion is a normal night: the run succeeds and serves the champion's recommendations.
    assert weaker.success
    champion = metadata_of(weaker, "champion_model")
    assert champion["outcome"] == "kept" and champion["champion_version"].endswith(" v1")
    assert metadata_of(weaker, "user_recommendations")["model_version"] == "1"


def test_the_champion_loads_with_mlflows_own_api_and_recommends(pipeline):
    import mlflow

    from algo_platform.resources.environment import build_resources

    tracking = build_resources(pipeline["settings"], make_project(window_days=DAYS))["experiment_tracking"]
    mlflow.set_tracking_uri(tracking.tracking_uri)
    mlflow.set_registry_uri(tracking.tracking_uri)
    recommender = mlflow.pyfunc.load_model(f"models:/{tracking.registered_model_name}@champion")
    assets = Path(pipeline["settings"].layout.project(PROJECT).root)
    sequences = pd.read_parquet(assets / "training_sequences" / f"{END_DAY}.parquet")
    vocabulary = pd.read_parquet(assets / "item_vocabulary" / f"{END_DAY}.parquet")
    item_of = dict(zip(vocabulary["item_index"], vocabulary["item_id"], strict=True))
    histories = [[item_of[i] for i in history] for history in sequences["history"].head(3)]
    top = recommender.predict(pd.DataFrame({"item_ids": histories}))
    assert len(top) == 3 and all(len(items) == 20 for items in top["item_ids"])
    assert set(np.concatenate(top["item_ids"].to_numpy())) <= set(vocabulary["item_id"])
