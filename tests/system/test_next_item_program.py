"""A team's own next-item program (`model.command:`) through the whole graph, as a team runs it:
`project new`, the numpy item-kNN of projects/movies in its folder, ingest and retrain. It is probed,
evaluated on the same split as popularity, promoted and served; its registered version loads with
MLflow's API in a fresh process after the project folder moved. A SASRec candidate retrained next is
then judged against that program's lists."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from algo_platform.cli import main as cli
from algo_platform.core.project import load_project
from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from tests.support.factories import END_DAY, PROJECT, metadata_of

MOVIES = Path(__file__).parents[2] / "projects" / "movies"
PROGRAM = {"command": ["python", "item_knn.py"], "neighbours": 50}


def _retrain(defs: dg.Definitions, instance, run_config: dict | None = None):
    return defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
        partition_key=END_DAY.isoformat(), instance=instance, run_config=run_config or {}
    )


def _with_model(folder: Path, model: dict) -> None:
    document = yaml.safe_load((folder / "project.yaml").read_text())
    document["model"] = model
    (folder / "project.yaml").write_text(yaml.safe_dump(document))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("program")
    folder = root / "projects" / PROJECT
    settings = Settings(env="local", storage_root=str(root / "storage"))
    days = generate(settings.layout.project(PROJECT).root, 7, 3_000, seed=11, end_date=END_DAY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGO_PLATFORM_PROJECTS", str(root / "projects"))
        start = (END_DAY - dt.timedelta(days=30)).isoformat()
        created = CliRunner().invoke(
            cli, ["project", "new", PROJECT, "--partitions-start", start, "--workspace", str(root / "workspace.yaml")]
        )
        assert created.exit_code == 0, created.output
        shutil.copy(MOVIES / "item_knn.py", folder / "item_knn.py")
        _with_model(folder, PROGRAM)
        defs = build_project_definitions(load_project(folder), settings)
        (root / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            ingest = defs.resolve_job_def(f"{PROJECT}_ingest_job")
            for day in days:
                assert ingest.execute_in_process(partition_key=day.day, instance=instance).success
            program = _retrain(defs, instance)
            # The team tries SASRec next: its candidate is judged against the program that serves.
            _with_model(folder, {"family": "sasrec", "epochs": 1})
            sasrec_defs = build_project_definitions(load_project(folder), settings)
            sasrec = _retrain(sasrec_defs, instance, {"ops": {"sequence_model": {"config": {"epochs": 1}}}})
            yield {"program": program, "sasrec": sasrec, "settings": settings, "root": root}


def test_the_program_is_probed_evaluated_promoted_and_served(runs):
    assert runs["program"].success
    model = metadata_of(runs["program"], "sequence_model")
    assert model["trained_by"] == "command python item_knn.py"
    assert model["probe_users"] > 100 and model["probe_seconds_per_1000_users"] > 0
    assert 0 < model["validation_ndcg@10"] <= 1
    evaluation = metadata_of(runs["program"], "evaluation_report")
    # Judged on the same held-out items as popularity, and better than it on this log.
    assert evaluation["model_ndcg@10"] > evaluation["popularity_ndcg@10"]
    champion = metadata_of(runs["program"], "champion_model")
    assert champion["outcome"] == "promoted" and champion["champion_family"] == "command"
    served = metadata_of(runs["program"], "user_recommendations")
    assert served["model_family"] == "command" and served["users"] > 100


def test_the_champion_loads_in_a_fresh_process_after_the_project_folder_moved(runs):
    root = runs["root"]
    shutil.move(root / "projects", root / "moved")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import json, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{PROJECT}-next_item@champion')\n"
        "answer = model.predict(pd.DataFrame({'item_ids': [[1, 2, 3], []]}))\n"
        "print(json.dumps([len(items) for items in answer['item_ids']]))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": runs["settings"].tracking_uri}
    env.pop("ALGO_PLATFORM_PROJECTS", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=180
    )
    shutil.move(root / "moved", root / "projects")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [20, 20]  # top 20 each, even for a user with no history


def test_a_candidate_of_another_family_is_judged_against_the_programs_lists(runs):
    assert runs["sasrec"].success
    evaluation = metadata_of(runs["sasrec"], "evaluation_report")
    program = metadata_of(runs["program"], "evaluation_report")
    # The champion's figures are the program's own on the same split.
    assert evaluation["champion_ndcg@10"] == pytest.approx(program["model_ndcg@10"])
    champion = metadata_of(runs["sasrec"], "champion_model")
    beat = evaluation["model_ndcg@10"] > evaluation["champion_ndcg@10"]
    assert champion["outcome"] == ("promoted" if beat else "kept")
    if not beat:
        assert champion["champion_family"] == "command"
        assert f"{evaluation['champion_ndcg@10']:.4f}" in champion["why"]
