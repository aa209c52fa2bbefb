"""The production instance (deploy/dagster.yaml) on a real PostgreSQL server."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from tests.support.factories import END_DAY, PROJECT, make_project
from tests.support.postgres import REPO

# The shipped project's code location, as the CLI and the daemon load it.
SHIPPED = "shortvideo"
LOCATION = f"projects/{SHIPPED}/definitions.py"
SENSOR = f"{SHIPPED}_landing_zone_sensor"


def dagster_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_deploy_config_reads_credentials_from_the_environment_only():
    text = (REPO / "deploy" / "dagster.yaml").read_text()
    assert "password:\n        env: DAGSTER_PG_PASSWORD" in text
    assert "postgres_url" not in text and "@" not in text


def test_a_runs_events_survive_a_new_instance_object(postgres_home, settings):
    generate(settings.layout.project(PROJECT).root, 1, 300, seed=1, end_date=END_DAY)
    with dg.DagsterInstance.from_config(str(postgres_home)) as writer:
        assert type(writer.run_storage).__name__ == "PostgresRunStorage"
        result = (
            build_project_definitions(make_project(), settings)
            .resolve_job_def(f"{PROJECT}_ingest_job")
            .execute_in_process(partition_key=END_DAY.isoformat(), instance=writer)
        )
    with dg.DagsterInstance.from_config(str(postgres_home)) as reader:
        run = reader.get_run_by_id(result.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert END_DAY.isoformat() in reader.get_materialized_partitions(dg.AssetKey([PROJECT, "cleaned_events"]))
        checks = reader.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey([PROJECT, "raw_events"]), "quality_score_above_threshold")]
        )
        assert checks, "check evaluations are stored too"


def test_schedule_and_sensor_state_and_cursor_survive(postgres_home, settings):
    env = {**os.environ, "ALGO_PLATFORM_STORAGE": settings.storage_root}
    for command in (["schedule", "start", f"{SHIPPED}_nightly_retraining"], ["sensor", "start", SENSOR]):
        done = dagster_cli(*command, "-f", LOCATION, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    cursor = json.dumps({"2026-11-20": {"dir_ns": 1, "latest_ns": 2, "at_latest": ["a.csv"]}})
    done = dagster_cli("sensor", "cursor", SENSOR, "--set", cursor, "-f", LOCATION, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    with dg.DagsterInstance.from_config(str(postgres_home)) as fresh:
        states = {state.instigator_name: state for state in fresh.all_instigator_state()}
        assert states[f"{SHIPPED}_nightly_retraining"].status.value == "RUNNING"
        assert states[SENSOR].status.value == "RUNNING"
        assert json.loads(states[SENSOR].instigator_data.cursor) == json.loads(cursor)


def test_two_runs_writing_at_once(postgres_home, settings):
    generate(settings.layout.project(SHIPPED).root, 2, 300, seed=2, end_date=END_DAY)
    env = {**os.environ, "ALGO_PLATFORM_STORAGE": settings.storage_root}
    days = ["2026-11-19", "2026-11-20"]
    # The schema exists before the runs start, as it does once a daemon or webserver has opened
    # the instance: two CLI processes on an empty database race to create it and one fails.
    with dg.DagsterInstance.from_config(str(postgres_home)):
        pass
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "job",
                "execute",
                "-f",
                LOCATION,
                "-j",
                f"{SHIPPED}_ingest_job",
                "--tags",
                json.dumps({"dagster/partition": day}),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in days
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        assert set(days) <= instance.get_materialized_partitions(dg.AssetKey([SHIPPED, "user_features"]))
        finished = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert sorted(run.tags["dagster/partition"] for run in finished) == days


@pytest.mark.skipif(os.environ.get("REQUIRE_POSTGRES") != "1", reason="only meaningful where CI requires PostgreSQL")
def test_ci_really_has_postgres(postgres_home):
    """CI's instance is PostgreSQL (the fixture fails, not skips, under REQUIRE_POSTGRES=1), and it stores runs."""
    from dagster_postgres import PostgresRunStorage

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        run = instance.create_run_for_job(dg.GraphDefinition(name="probe").to_job())
        assert instance.get_run_by_id(run.run_id).job_name == "probe"


def test_users_grants_and_the_audit_log_live_in_the_instances_postgres(postgres_home):
    """The webserver and the CLI share the instance's PostgreSQL; the audit log is append-only there too."""
    import sqlalchemy as sa

    from algo_platform.accounts.principal import Role
    from algo_platform.accounts.store import Accounts

    with dg.DagsterInstance.get() as instance:
        accounts = Accounts.for_instance(instance)
        assert accounts.engine.dialect.name == "postgresql"
        accounts.add_user("edna", "a-long-enough-password")
        accounts.grant("edna", "team_a", Role.editor)
        accounts.record("launchRun", "allowed", user="edna", role="editor", project="team_a", client="10.0.0.1")
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), accounts.engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM algo_platform_audit")
        accounts.close()
    # A second process (the CLI, another webserver replica) sees the same users and log.
    with dg.DagsterInstance.get() as instance:
        again = Accounts.for_instance(instance)
        assert again.verify_password("edna", "a-long-enough-password")
        assert again.principal("edna").roles == {"team_a": Role.editor}
        assert [(e.user, e.action, e.outcome) for e in again.entries()] == [("edna", "launchRun", "allowed")]
        again.close()
