import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from algo_platform.core.settings import load_settings
from algo_platform.definitions import build_project_definitions
from tests.support.factories import PROJECT

REPO = Path(__file__).resolve().parents[2]

# A renamed asset or a lost dependency shows up here as a diff.
EXPECTED_GRAPH = {
    "raw_events": set(),
    "cleaned_events": {"raw_events"},
    "data_profile": {"cleaned_events"},
    "user_features": {"cleaned_events"},
    "item_features": {"cleaned_events"},
    "training_sequences": {"cleaned_events"},
    "item_vocabulary": {"cleaned_events"},
    "sequence_model": {"training_sequences", "item_vocabulary"},
    "evaluation_report": {"sequence_model", "training_sequences", "item_vocabulary", "user_features"},
    "champion_model": {"sequence_model", "evaluation_report"},
    "user_recommendations": {"champion_model", "training_sequences", "item_vocabulary"},
}


def test_asset_graph_matches_the_architecture(project, settings):
    graph = build_project_definitions(project, settings).resolve_asset_graph()
    actual = {
        key.path[-1]: {parent.path[-1] for parent in graph.get(key).parent_keys} for key in graph.get_all_asset_keys()
    }
    assert {key.path[0] for key in graph.get_all_asset_keys()} == {PROJECT}
    assert actual == EXPECTED_GRAPH
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def is not None, f"{key} should be partitioned by day"


def test_jobs_and_gpu_pool(project, settings):
    defs = build_project_definitions(project, settings)
    ingest, retrain = defs.resolve_job_def(f"{PROJECT}_ingest_job"), defs.resolve_job_def(f"{PROJECT}_retrain_job")
    # Ingest cleans and describes the day; retrain trains, judges and serves from it: none of the other's work.
    ingested = {key.path[1] for key in ingest.asset_layer.executable_asset_keys}
    retrained = {key.path[1] for key in retrain.asset_layer.executable_asset_keys}
    assert {"raw_events", "cleaned_events", "user_features", "item_features"} <= ingested
    assert {"training_sequences", "sequence_model", "evaluation_report", "champion_model"} <= retrained
    assert not ingested & {"sequence_model", "champion_model"} and "cleaned_events" not in retrained
    model = defs.resolve_assets_def(dg.AssetKey([PROJECT, "sequence_model"]))
    assert model.op.pool == "gpu"


def test_loading_the_code_location_imports_no_heavy_library():
    heavy = ["torch", "great_expectations", "mlflow", "matplotlib"]
    code = (
        "import sys, runpy; runpy.run_path('projects/shortvideo/definitions.py'); "
        f"print([m for m in {heavy} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_environment_is_one_setting_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("ALGO_PLATFORM_ENV", "prod")
    with pytest.raises(ValueError, match="ALGO_PLATFORM_ENV='prod'.*local, kubernetes"):
        load_settings()
    monkeypatch.setenv("ALGO_PLATFORM_ENV", "local")
    monkeypatch.setenv("ALGO_PLATFORM_STORAGE", "s3://bucket/prefix")
    assert load_settings().storage_root == "s3://bucket/prefix"


def test_mlflow_defaults_to_files_beside_the_instance(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert settings.artifact_location == f"{tmp_path}/mlartifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.mlflow.svc:5000")
    production = load_settings()
    assert production.tracking_uri == "http://mlflow.mlflow.svc:5000" and production.artifact_location == ""


def test_a_project_scaffolded_before_the_move_still_loads_and_says_what_to_change(tmp_path):
    """Its definitions.py imports `algo_platform.pipeline.location`: it loads, with a DeprecationWarning
    naming the new import."""
    import shutil

    folder = tmp_path / "shortvideo"
    shutil.copytree(REPO / "projects" / "shortvideo", folder, ignore=shutil.ignore_patterns("__pycache__"))
    old = "from algo_platform.pipeline.location import load_project_definitions\n"
    (folder / "definitions.py").write_text(old + "\ndefs = load_project_definitions(__file__)\n")
    check = (
        "import runpy, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    defs = runpy.run_path({str(folder / 'definitions.py')!r})['defs']\n"
        "print(len(list(defs.resolve_asset_graph().get_all_asset_keys())))\n"
        "print([str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)])\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assets, warned = done.stdout.splitlines()[-2:]
    assert int(assets) > 5
    assert "algo_platform.definitions" in warned


def test_a_team_model_breaking_the_contract_fails_its_step_once_naming_the_rule(settings, tmp_path, monkeypatch):
    """The trainer refuses it (exit 65); the model asset fails without the retries a lost node gets."""
    from algo_platform.assets.model import build_model_asset
    from algo_platform.definitions import in_project
    from algo_platform.resources.environment import build_resources
    from algo_platform.resources.partitions import project_partitions
    from tests.support.factories import make_project
    from tests.support.k8s_training import DAY, land_training_inputs
    from tests.unit.test_tasks import TEAM_MODELS

    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(tmp_path / "projects"))
    (tmp_path / "projects" / PROJECT).mkdir(parents=True)
    (tmp_path / "projects" / PROJECT / "models.py").write_text(TEAM_MODELS)
    project = make_project(model={"family": "models.py:HalfCatalogue"})
    land_training_inputs(settings, tmp_path)
    partitions = project_partitions(project.partitions_start, project.data.partition)
    inputs = [
        dg.AssetSpec([PROJECT, name], partitions_def=partitions) for name in ("training_sequences", "item_vocabulary")
    ]
    model = in_project([build_model_asset(partitions, project.model.hyperparameters(), "gpu")], project)[0]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [model, *inputs], partition_key=DAY, resources=build_resources(settings, project), instance=instance,
            raise_on_error=False, run_config={"ops": {"sequence_model": {"config": {"device": "cpu"}}}},
        )  # fmt: skip
        events = instance.all_logs(result.run_id)
    assert not result.success
    kinds = [e.dagster_event.event_type for e in events if e.dagster_event is not None]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds  # failed once, not three times
    failure = next(
        e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
    )
    assert "breaks the task contract" in failure.dagster_event.step_failure_data.error.message
    assert any("rule 'scores every item'" in (e.user_message or "") for e in events)  # the trainer's own words


@pytest.mark.parametrize(
    ("edit", "exclude_seen", "rule"),
    [
        # Ignores exclude_seen: its lists hold what the user already rated.
        (('"exclude_seen": settings["exclude_seen"]', '"exclude_seen": False'), True, "no already-seen items"),
        # Lists shorter than the platform asks for.
        (('model_config={"k": settings["k"]', 'model_config={"k": 5'), False, "20 items per list"),
    ],
)
def test_a_next_item_program_breaking_the_contract_fails_its_step_once_naming_the_rule(
    settings, tmp_path, monkeypatch, edit, exclude_seen, rule
):
    """The numpy item-kNN of projects/movies with one defect: the probe refuses it before registration."""
    from algo_platform.assets.program_model import build_program_model_asset
    from algo_platform.definitions import in_project
    from algo_platform.resources.environment import build_resources
    from algo_platform.resources.partitions import project_partitions
    from tests.support.factories import make_project
    from tests.support.k8s_training import DAY, land_training_inputs

    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(tmp_path / "projects"))
    (tmp_path / "projects" / PROJECT).mkdir(parents=True)
    program = (REPO / "projects" / "movies" / "item_knn.py").read_text()
    assert edit[0] in program
    (tmp_path / "projects" / PROJECT / "item_knn.py").write_text(program.replace(*edit))
    project = make_project(model={"command": ["python", "item_knn.py"]}, training={"exclude_seen": exclude_seen})
    land_training_inputs(settings, tmp_path)
    partitions = project_partitions(project.partitions_start, project.data.partition)
    inputs = [
        dg.AssetSpec([PROJECT, name], partitions_def=partitions) for name in ("training_sequences", "item_vocabulary")
    ]
    model = in_project([build_program_model_asset(partitions, project, "gpu")], project)[0]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [model, *inputs], partition_key=DAY, resources=build_resources(settings, project), instance=instance,
            raise_on_error=False,
        )  # fmt: skip
        events = instance.all_logs(result.run_id)
    assert not result.success
    kinds = [e.dagster_event.event_type for e in events if e.dagster_event is not None]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds  # failed once, not three times
    assert dg.DagsterEventType.ASSET_MATERIALIZATION not in kinds  # nothing registered
    failure = next(
        e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
    )
    message = failure.dagster_event.step_failure_data.error.message
    assert "command python item_knn.py breaks the next-item contract" in message and rule in message


TEAM_FITTED = '''
from algo_platform.models.fitted import FittedNextItemModel


class Cooccurrence(FittedNextItemModel):
    """Items users had together, counted: fitted by its hook on the training interactions, no gradients."""

    settings = {"self_weight": 0.0, "scale": 1.0}

    def fit_interactions(self, interactions):
        dense = (interactions.to_dense() if interactions.is_sparse else interactions).float()
        together = dense.T @ dense
        together.fill_diagonal_(self.config.settings["self_weight"])
        self.weights.copy_(together * self.config.settings["scale"])
'''


def _team_project(tmp_path, monkeypatch, model: dict):
    from algo_platform.core.project import load_project

    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(tmp_path / "projects"))
    folder = tmp_path / "projects" / PROJECT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.py").write_text(TEAM_FITTED)
    document = {"name": PROJECT, "owners": ["team:a"], "partitions_start": "2024-01-01", "model": model}
    (folder / "project.yaml").write_text(json.dumps(document))
    return load_project(folder)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"scael": 2.0},
            "model.scael: unknown setting; the trainer's are .* Cooccurrence.settings declares self_weight, scale",
        ),
        ({"scale": "2"}, "model.scale: '2' is not of type float"),
    ],
)
def test_a_team_class_setting_is_checked_against_what_the_class_declares(tmp_path, monkeypatch, setting, message):
    from algo_platform.core.project import ProjectError

    with pytest.raises(ProjectError, match=message):
        _team_project(tmp_path, monkeypatch, {"family": "models.py:Cooccurrence", **setting})


def test_a_team_class_gets_its_settings_and_its_version_loads_after_the_folder_moved(settings, tmp_path, monkeypatch):
    """A fitted team class with a setting of its own: trained by the model asset, registered with its
    code, and `models:/<p>-next_item/1` loads in a fresh process once the project folder is gone."""
    from algo_platform.assets.model import build_model_asset
    from algo_platform.definitions import in_project
    from algo_platform.resources.environment import build_resources
    from algo_platform.resources.partitions import project_partitions
    from algo_platform.training.artifacts import load_checkpoint
    from tests.support.k8s_training import DAY, land_training_inputs

    project = _team_project(tmp_path, monkeypatch, {"family": "models.py:Cooccurrence", "scale": 2})
    land_training_inputs(settings, tmp_path)
    partitions = project_partitions(project.partitions_start, project.data.partition)
    inputs = [
        dg.AssetSpec([PROJECT, name], partitions_def=partitions) for name in ("training_sequences", "item_vocabulary")
    ]
    model = in_project([build_model_asset(partitions, project.model.hyperparameters(), "gpu")], project)[0]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [model, *inputs], partition_key=DAY, resources=build_resources(settings, project), instance=instance,
            run_config={"ops": {"sequence_model": {"config": {"device": "cpu"}}}},
        )  # fmt: skip
    descriptor = result.asset_value(dg.AssetKey([PROJECT, "sequence_model"]))
    import torch

    saved = load_checkpoint(descriptor["model_uri"], torch.device("cpu"))["model_config"]["settings"]
    assert saved == {"self_weight": 0.0, "scale": 2}  # the class's default, and the project's value over it
    shutil.rmtree(tmp_path / "projects")
    script = (
        "import json, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{PROJECT}-next_item/1')\n"
        "print(json.dumps(model.predict(pd.DataFrame({'item_ids': [[100, 200]]}))['item_ids'][0]))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    env.pop("ALGO_PLATFORM_PROJECTS", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout.splitlines()[-1])
    assert listed and 100 not in listed and 200 not in listed  # served lists leave out what was just seen
