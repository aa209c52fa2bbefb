"""Projects: each team's pipeline declared in one YAML file, loaded side by side with no collisions."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from algo_platform.cli import main as cli
from algo_platform.core.project import PROJECT_TAG, TRAINING_TAG, ProjectError, load_project
from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions, load_project_definitions
from algo_platform.ingest.datagen import generate
from algo_platform.resources.environment import build_resources
from tests.support.factories import END_DAY

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("shortvideo", "movies")


@pytest.fixture
def shipped(settings):
    return {name: build_project_definitions(load_project(REPO / "projects" / name), settings) for name in SHIPPED}


def test_the_shipped_projects_load_side_by_side_without_collisions(shipped, settings):
    keys = {name: defs.resolve_asset_graph().get_all_asset_keys() for name, defs in shipped.items()}
    assert not keys["shortvideo"] & keys["movies"]
    for name, project_keys in keys.items():
        assert {key.path[0] for key in project_keys} == {name} and len(project_keys) == 11
    names = {
        name: {j.name for j in defs.resolve_all_job_defs()}
        | {s.name for s in defs.schedules}
        | {s.name for s in defs.sensors}
        for name, defs in shipped.items()
    }
    assert names["movies"] >= {"movies_ingest_job", "movies_retrain_job", "movies_nightly_retraining"}
    assert not (names["shortvideo"] - {"__ASSET_JOB"}) & (names["movies"] - {"__ASSET_JOB"})
    tracking = {name: build_resources(settings, load_project(REPO / "projects" / name)) for name in SHIPPED}
    assert tracking["movies"]["experiment_tracking"].registered_model_name == "movies-next_item"
    assert tracking["shortvideo"]["experiment_tracking"].registered_model_name == "shortvideo-next_item"
    # Where each one's per-family models from before one champion per task are found.
    assert tracking["movies"]["experiment_tracking"].serving_legacy_name == "movies-gru4rec"
    assert tracking["movies"]["storage"].root == f"{settings.storage_root}/projects/movies"


def test_every_run_carries_its_project_and_priority_and_only_training_is_limited(shipped):
    movies = shipped["movies"]
    ingest, retrain = movies.resolve_job_def("movies_ingest_job"), movies.resolve_job_def("movies_retrain_job")
    assert ingest.tags[PROJECT_TAG] == "movies" and ingest.tags["dagster/priority"] == "5"
    assert TRAINING_TAG not in ingest.tags and retrain.tags[TRAINING_TAG] == "movies"
    schedule = next(iter(movies.schedules))
    assert schedule.cron_schedule == "30 3 * * *" and schedule.execution_timezone == "Asia/Shanghai"


def test_the_catalog_shows_owners_descriptions_versions_and_columns(shipped):
    graph = shipped["shortvideo"].resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:shortvideo-reco", "reco-lead@example.com"], key
        assert node.group_name.startswith("shortvideo_") and node.tags[PROJECT_TAG] == "shortvideo"
        assert node.code_version and node.description, key
    columns = graph.get(dg.AssetKey(["shortvideo", "cleaned_events"])).metadata["dagster/column_schema"].columns
    assert {c.name for c in columns} >= {"user_id", "item_id", "ts"} and all(c.description for c in columns)
    freshness = graph.get(dg.AssetKey(["shortvideo", "user_recommendations"])).freshness_policy
    assert freshness is not None


def test_a_projects_hyperparameters_are_the_launchpad_defaults(shipped):
    model = shipped["movies"].resolve_assets_def(dg.AssetKey(["movies", "sequence_model"]))
    fields = model.op.config_schema.config_type.fields
    assert fields["hidden_dim"].default_value == 96
    # The family is project.yaml's alone (it picks the code the trainer imports): shown, not a setting.
    assert "model" not in fields and "gru4rec" in model.descriptions_by_key[dg.AssetKey(["movies", "sequence_model"])]


def write_project(folder: Path, text: str) -> Path:
    (folder / "movies").mkdir(parents=True, exist_ok=True)
    path = folder / "movies" / "project.yaml"
    path.write_text(text)
    return path


GOOD = "name: movies\nowners: [team:movies]\npartitions_start: 2024-06-01\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("model:\n  family: transformer\n", ["model.family", "not one of sasrec, gru4rec", "transformer"]),
        ("model:\n  hidden_size: 64\n", ["unknown hyper-parameter hidden_size", "hidden_dim"]),
        ("model:\n  epochs: many\n", ["epochs: 'many' is not of type int"]),
        ("model:\n  blend_with: knn\n", ["blend_with: 'knn' is not one of '', 'itemknn', 'ease'"]),
        ("model:\n  family: ease\n  blend_with: itemknn\n", ["blends a trained family with a fitted one; ease"]),
        ("training:\n  window_days: 1\n", ["training.window_days", "greater than or equal to 2"]),
        ("schedule:\n  timezone: Mars/Olympus\n", ["schedule.timezone", "IANA"]),
        ("schedule:\n  cron: every night\n", ["schedule.cron", "not a cron schedule"]),
        ("data:\n  interaction_types: [watch]\n", ["data.interaction_types", "play, like"]),
        ("gpus: 2\n", ["gpus", "Extra inputs are not permitted"]),
        (
            "data:\n  feedback:\n    column: stars\n    threshold: 4\n",
            ["data", "feedback.column 'stars' must be declared in data.extra_columns"],
        ),
        ("data:\n  extra_columns:\n    user_id: int64\n", ["data.extra_columns", "canonical columns already"]),
        ("data:\n  column_map:\n    userid: uid\n", ["data", "column_map maps ['userid']", "user_id"]),
    ],
)
def test_a_malformed_project_file_names_the_file_the_field_and_the_allowed_values(tmp_path, extra, expected):
    path = write_project(tmp_path, GOOD + extra)
    with pytest.raises(ProjectError) as raised:
        load_project(path.parent)
    message = str(raised.value)
    assert message.startswith(str(path))
    for part in expected:
        assert part in message


def test_broken_yaml_and_missing_fields_say_where(tmp_path):
    path = write_project(tmp_path, "name: movies\nowners: [team:movies\n")
    with pytest.raises(ProjectError, match=r"not valid YAML at line 3"):
        load_project(path)
    write_project(tmp_path, "name: movies\nowners: [team:movies]\n")
    with pytest.raises(ProjectError, match=r"partitions_start: Field required"):
        load_project(path)
    write_project(tmp_path, GOOD.replace("name: movies", "name: films"))
    with pytest.raises(ProjectError, match="differs from its folder 'movies'"):
        load_project(path)


def test_project_new_scaffolds_a_location_that_ingests_without_editing_python(tmp_path, monkeypatch):
    projects, workspace = tmp_path / "projects", tmp_path / "workspace.yaml"
    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(projects))
    monkeypatch.setenv("ALGO_PLATFORM_STORAGE", str(tmp_path / "storage"))
    runner = CliRunner()
    created = runner.invoke(
        cli, ["project", "new", "ads_ranking", "--owner", "ads@example.com", "--workspace", str(workspace)]
    )
    assert created.exit_code == 0, created.output
    assert "projects/ads_ranking/project.yaml" in created.output
    entries = yaml.safe_load(workspace.read_text())["load_from"]
    assert entries == [
        {"python_file": {"relative_path": "projects/ads_ranking/definitions.py", "location_name": "ads_ranking"}}
    ]
    again = runner.invoke(cli, ["project", "new", "ads_ranking", "--workspace", str(workspace)])
    assert again.exit_code == 2 and "already exists" in again.output
    listed = runner.invoke(cli, ["project", "list", "--workspace", str(workspace)])
    assert listed.exit_code == 0 and "ads_ranking" in listed.output and " ok " in listed.output

    # The team's data, uploaded with the platform's own command, through the scaffolded location.
    day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
    generate(
        str(tmp_path / "storage" / "projects" / "ads_ranking"), 1, 400, seed=5, end_date=dt.date.fromisoformat(day)
    )
    defs = load_project_definitions(projects / "ads_ranking" / "definitions.py")
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ads_ranking_ingest_job").execute_in_process(partition_key=day, instance=instance)
        assert result.success
        assert day in instance.get_materialized_partitions(dg.AssetKey(["ads_ranking", "user_features"]))
    assert (tmp_path / "storage" / "projects" / "ads_ranking" / "user_features" / f"{day}.parquet").exists()


def test_project_list_reports_a_broken_project_and_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(tmp_path))
    write_project(tmp_path, GOOD + "model:\n  family: transformer\n")
    listed = CliRunner().invoke(cli, ["project", "list", "--workspace", str(tmp_path / "workspace.yaml")])
    assert listed.exit_code == 1 and "broken" in listed.output and "model.family" in listed.output


def test_two_projects_train_in_one_instance_each_in_its_own_storage_and_registry(tmp_path):
    settings = Settings(env="local", storage_root=str(tmp_path / "storage"), dagster_home=str(tmp_path))
    days = [(END_DAY - dt.timedelta(days=1)), END_DAY]
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        for name in SHIPPED:
            project = load_project(REPO / "projects" / name)
            project = project.model_copy(update={"training": project.training.model_copy(update={"window_days": 2})})
            feedback = project.data.feedback
            generate(
                settings.layout.project(name).root,
                2,
                1_500,
                seed=7,
                end_date=END_DAY,
                ratings_column=feedback.column if feedback else None,
            )
            defs = build_project_definitions(project, settings)
            for day in days:
                defs.resolve_job_def(f"{name}_ingest_job").execute_in_process(partition_key=str(day), instance=instance)
            result = defs.resolve_job_def(f"{name}_retrain_job").execute_in_process(
                partition_key=str(END_DAY),
                instance=instance,
                run_config={"ops": {"sequence_model": {"config": {"epochs": 1, "patience": 0}}}},
            )
            assert result.success, name
            assert result.dagster_run.tags[PROJECT_TAG] == name
            model = next(
                e
                for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey([name, "sequence_model"])
            ).materialization.metadata
            assert model["registered_model_version"].value == f"{project.registered_model_name} v1"
            assert Path(model["model_uri"].value).is_relative_to(settings.layout.project(name).root)
        for name in SHIPPED:
            assert str(END_DAY) in instance.get_materialized_partitions(dg.AssetKey([name, "user_recommendations"]))
    # The movies team's ratings travelled from the landing zone to its cleaned events; low ones
    # are not interactions, so its sequences hold fewer items than its cleaned plays and likes.
    movies = Path(settings.layout.project("movies").root)
    cleaned = pd.concat([pd.read_parquet(movies / "cleaned_events" / f"{day}.parquet") for day in days])
    assert cleaned["rating"].between(1, 5).all() and (cleaned["rating"] < 3.5).any()
    sequences = pd.read_parquet(movies / "training_sequences" / f"{END_DAY}.parquet")
    liked = cleaned["event_type"].isin(["play", "like", "share", "follow"]) & (cleaned["rating"] >= 3.5)
    assert sequences["history_length"].sum() + sequences["holdout_length"].sum() == liked.sum()
    shortvideo = pd.read_parquet(
        Path(settings.layout.project("shortvideo").root) / "cleaned_events" / f"{END_DAY}.parquet"
    )
    assert "rating" not in shortvideo.columns


def test_a_tracking_server_url_reaches_the_resource_as_an_env_var_not_its_value(monkeypatch):
    from algo_platform.core.settings import load_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://reco:s3cret@mlflow.internal:5000")
    tracking = build_resources(load_settings(), load_project(REPO / "projects" / "movies"))["experiment_tracking"]
    assert isinstance(tracking.tracking_uri, dg.EnvVar) and "s3cret" not in repr(tracking.tracking_uri)
    assert tracking.process_config_and_initialize().tracking_uri == "http://reco:s3cret@mlflow.internal:5000"


def test_the_feed_project_holds_a_retrieval_and_two_ranking_tasks(settings):
    feed = load_project(REPO / "projects" / "feed")
    defs = build_project_definitions(feed, settings)
    keys = {key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    stages = ("examples", "model", "evaluation", "champion", "recommendations")
    for task in ("ranking", "sklearn_ranking"):
        assert {f"{task}_{stage}" for stage in stages} <= keys
    assert "champion_model" in keys and len(keys) == 21
    resources = build_resources(settings, feed)
    assert resources["ranking_tracking"].registered_model_name == "feed-ranking"
    assert resources["sklearn_ranking_tracking"].registered_model_name == "feed-sklearn_ranking"
    assert resources["ranking_tracking"].serving_legacy_name == "feed-ranking-wideanddeep"
    assert resources["experiment_tracking"].registered_model_name == "feed-next_item"
    retrain = defs.resolve_job_def("feed_retrain_job")
    assert {"ranking_model", "sklearn_ranking_recommendations"} <= {n.name for n in retrain.graph.node_defs}


def test_the_cli_prints_no_library_warnings(tmp_path):
    """Every shipped project's code location is built; the terminal shows the listing, not
    Dagster's beta markers (tests see those warnings; a person at a terminal does not)."""
    import os
    import subprocess

    from tests.support.processes import BIN

    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["ALGO_PLATFORM_STORAGE"] = str(tmp_path / "storage")
    done = subprocess.run(
        [str(BIN / "algo-platform"), "project", "list"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "movies" in done.stdout and "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("[python, ../outside.py]", "no absolute path, no '..'"),
        ("[/bin/sh, -c, 'cat /etc/passwd']", "'/bin/sh': a command names files inside the project's folder"),
        ("[python, link.py]", "'link.py' leads out of the project's folder (a link)"),
        (f"[python, {'x' * 5000}.py]", "is not a usable file name (OSError"),
    ],
)
def test_a_programs_command_names_only_files_in_its_project_folder(tmp_path, command, says):
    (tmp_path / "outside.py").write_text("print('not the team's')\n")
    path = write_project(tmp_path / "projects", GOOD + f"model:\n  command: {command}\n")
    (path.parent / "link.py").symlink_to(tmp_path / "outside.py")
    with pytest.raises(ProjectError, match="model.command") as raised:
        load_project(path.parent)
    assert says in str(raised.value)
    write_project(tmp_path / "projects", GOOD + "model:\n  command: [python, knn.py, --neighbours, '50']\n")
    assert load_project(path.parent).model.command == ["python", "knn.py", "--neighbours", "50"]


def test_a_program_started_here_inherits_no_secret_of_the_web_server(monkeypatch):
    """The trainer and a team's program get the platform's environment (storage credentials), but the
    session secret and a CLI user's password are blanked."""
    from algo_platform.resources.launcher import SubprocessTrainingLauncher

    monkeypatch.setenv("ALGO_PLATFORM_SESSION_SECRET", "s" * 40)
    monkeypatch.setenv("ALGO_PLATFORM_STORAGE", "/kept/for/programs")
    program = (
        "import os\nfrom dagster_pipes import open_dagster_pipes\nwith open_dagster_pipes() as pipes:\n"
        "    pipes.report_asset_materialization(metadata={'secret': os.environ.get('ALGO_PLATFORM_SESSION_SECRET', ''),"
        " 'storage': os.environ.get('ALGO_PLATFORM_STORAGE', '')})\n"
    )

    @dg.asset
    def program_output(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        invocation = SubprocessTrainingLauncher().run_task(context, ["python", "-c", program], {})
        return invocation.get_materialize_result()

    result = dg.materialize([program_output])
    metadata = result.asset_materializations_for_node("program_output")[0].metadata
    assert metadata["secret"].value == "" and metadata["storage"].value == "/kept/for/programs"


def test_a_retrain_without_a_partition_trains_for_the_last_ingested_one_not_today(tmp_path):
    """An imported history that ended in 2024: `retrain` without --partition trains for its last
    period, not for a today that has no data."""
    from algo_platform.cli.data import default_retrain_partition

    path = write_project(tmp_path, GOOD)
    project = load_project(path.parent)
    with dg.instance_for_test() as instance:
        key, why = default_retrain_partition(instance, project)
        assert key > "2026" and "nothing ingested" in why
        for day in ("2024-06-03", "2024-06-12", "2024-06-05"):
            event = dg.AssetMaterialization(asset_key=[project.name, "cleaned_events"], partition=day)
            instance.report_runless_asset_event(event)
        assert default_retrain_partition(instance, project) == ("2024-06-12", "the last ingested partition")


def test_a_second_retrain_of_a_partition_follows_the_one_still_running(tmp_path):
    from dagster._core.execution.backfill import BulkActionStatus

    from algo_platform.jobs import backfill as backfills

    project = load_project(write_project(tmp_path, GOOD).parent)
    defs = build_project_definitions(project, Settings(env="local", storage_root=str(tmp_path / "storage")))
    with dg.instance_for_test() as instance:
        assert backfills.running_retrain(instance, project, "2024-06-10") is None
        first = backfills.request_retrain(instance, defs, project, "2024-06-10")
        assert backfills.running_retrain(instance, project, "2024-06-10") == first
        assert backfills.running_retrain(instance, project, "2024-06-11") is None  # another partition: its own
        instance.update_backfill(instance.get_backfill(first).with_status(BulkActionStatus.COMPLETED_SUCCESS))
        assert backfills.running_retrain(instance, project, "2024-06-10") is None  # ended: a new one may start


def test_a_failed_runs_cause_says_what_the_program_raised():
    """`retrain --wait` and `backfill --wait` print a failed run's cause: for a program launched through
    Pipes, what it raised, not only that it exited with code 1."""
    from algo_platform.jobs.backfill import run_failure
    from algo_platform.resources.launcher import SubprocessTrainingLauncher

    program = (
        "from dagster_pipes import open_dagster_pipes\nwith open_dagster_pipes():\n"
        "    raise RuntimeError('the neighbours table has NaN rows 17..20')\n"
    )

    @dg.asset
    def program_output(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return SubprocessTrainingLauncher().run_task(context, ["python", "-c", program], {}).get_materialize_result()

    with dg.instance_for_test() as instance:
        result = dg.materialize([program_output], raise_on_error=False, instance=instance)
        cause = run_failure(instance, result.run_id)
    assert "step program_output" in cause
    assert cause.endswith("the program raised RuntimeError: the neighbours table has NaN rows 17..20")
