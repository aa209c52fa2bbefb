"""Further tasks through the whole graph: a team's engagement model from its project folder and a
scikit-learn command task, trained, evaluated, promoted and served beside the next-item task."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from algo_platform.cli import main as cli
from algo_platform.core.project import load_project
from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from algo_platform.resources.tracking import mlflow_uris_kept
from algo_platform.tasks.engagement.features import FEATURES
from tests.support.factories import END_DAY, PROJECT, ingest_and_retrain, metadata_of

FEED = Path(__file__).parents[2] / "projects" / "feed"
TASKS = [
    {"name": "ranking", "type": "engagement", "model": {"family": "models.py:WideAndDeep", "epochs": 4}},
    {"name": "sklearn_ranking", "type": "engagement", "command": ["python", "sklearn_ranker.py"]},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    folder = root / "projects" / PROJECT
    settings = Settings(env="local", storage_root=str(root / "storage"))
    days = generate(settings.layout.project(PROJECT).root, 7, 4_000, seed=5, end_date=END_DAY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGO_PLATFORM_PROJECTS", str(root / "projects"))
        # As a team starts: `project new`, its code in the project folder, its tasks in project.yaml.
        start = (END_DAY - dt.timedelta(days=30)).isoformat()
        created = CliRunner().invoke(
            cli, ["project", "new", PROJECT, "--partitions-start", start, "--workspace", str(root / "workspace.yaml")]
        )
        assert created.exit_code == 0, created.output
        for name in ("models.py", "sklearn_ranker.py"):
            shutil.copy(FEED / name, folder / name)
        document = yaml.safe_load((folder / "project.yaml").read_text())
        document["tasks"] = TASKS
        (folder / "project.yaml").write_text(yaml.safe_dump(document))
        project = load_project(folder)
        defs = build_project_definitions(project, settings)
        (root / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            _, retrain = ingest_and_retrain(defs, days, instance, epochs=3)
            yield {"retrain": retrain, "settings": settings, "project": project}


def test_every_task_asset_is_materialized(trained):
    assert trained["retrain"].success
    for task in ("ranking", "sklearn_ranking"):
        for stage in ("examples", "model", "evaluation", "champion", "recommendations"):
            metadata_of(trained["retrain"], f"{task}_{stage}")


def test_examples_are_split_by_day_into_train_validation_and_holdout(trained):
    # That an impression's features see only the days before it is tests/unit/test_tasks.py's
    # test_features_of_an_impression_see_only_the_days_before_it (its label changes, they do not).
    metadata = metadata_of(trained["retrain"], "ranking_examples")
    # 7 days: the first only featurises, then 4 training days, 1 validation day, the held-out day.
    assert metadata["holdout_examples"] > 0 and metadata["validation_examples"] > 0
    assert metadata["train_examples"] > 3 * metadata["holdout_examples"]


def test_team_model_beats_the_item_rate_baseline_and_reports_calibration(trained):
    metadata = metadata_of(trained["retrain"], "ranking_evaluation")
    assert metadata["model_auc"] > metadata["item_rate_auc"] + 0.02
    assert metadata["model_auc"] > 0.5 and 0 < metadata["model_log_loss"] < 0.7
    assert "observed" in metadata["calibration"]
    assert metadata["users"] > 0 and 0 < metadata["candidate_recall"] <= 1
    assert {"retrieval_ndcg@10", "two_stage_ndcg@10"} <= set(metadata)
    model = metadata_of(trained["retrain"], "ranking_model")
    assert model["model_format"] == "torch-state" and model["trained_by"].endswith("models.py:WideAndDeep")


def test_command_task_is_evaluated_gated_and_served_like_a_platform_model(trained):
    model = metadata_of(trained["retrain"], "sklearn_ranking_model")
    assert model["model_format"] == "mlflow" and model["trained_by"] == "python sklearn_ranker.py"
    evaluation = metadata_of(trained["retrain"], "sklearn_ranking_evaluation")
    champion = metadata_of(trained["retrain"], "sklearn_ranking_champion")
    # This task keeps the default baseline: its first model must beat the item's historical rate.
    assert (champion["outcome"] == "promoted") == (evaluation["model_auc"] > evaluation["item_rate_auc"])
    served = metadata_of(trained["retrain"], "sklearn_ranking_recommendations")
    assert served["users"] > 0


def test_champions_are_registered_per_task_and_load_with_mlflows_api(trained):
    project = trained["project"]
    name = project.task_registered_model_name(project.tasks[0])
    assert name == f"{PROJECT}-ranking"  # one registered model per task, whatever its family
    frame = pd.DataFrame(np.zeros((3, len(FEATURES)), dtype=np.float32), columns=list(FEATURES))
    with mlflow_uris_kept():
        mlflow.set_tracking_uri(trained["settings"].tracking_uri)
        mlflow.set_registry_uri(trained["settings"].tracking_uri)
        ranker = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        predicted = ranker.predict(frame)
    assert predicted["probability"].between(0, 1).all() and len(predicted) == 3


def test_recommendations_are_the_retrieval_candidates_reranked(trained):
    served = metadata_of(trained["retrain"], "ranking_recommendations")
    retrieval = metadata_of(trained["retrain"], "user_recommendations")
    assert served["users"] == retrieval["users"] and served["candidates_per_user"] == 100
    ranked, retrieved = pd.read_parquet(served["path"]), pd.read_parquet(retrieval["path"])
    # Each list carries the ranker's engagement estimate of its items, which varies within a list ...
    scores = np.stack(ranked["engagement"].to_numpy())
    assert ((scores >= 0) & (scores <= 1)).all() and (scores.std(axis=1) > 0).mean() > 0.9
    # ... and weighs in the order (retrieval's log-probability plus the log of the engagement estimate):
    # the lists are not the retrieval's for most users.
    joined = ranked.merge(retrieved, on="user_id", suffixes=("", "_retrieval"))
    changed = [
        list(mine) != list(theirs)[: len(mine)]
        for mine, theirs in zip(joined["item_ids"], joined["item_ids_retrieval"], strict=True)
    ]
    assert len(joined) == len(ranked) and sum(changed) > len(changed) / 2
