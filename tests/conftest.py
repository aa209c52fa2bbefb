import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from algo_platform.core.project import Project, parse_project
from algo_platform.core.settings import Settings

pytest_plugins = ["tests.postgres"]

# Modules that start servers, daemons, a browser, a JVM, a Kubernetes emulator or whole pipelines
# in processes of their own: marked `system`; `make test-fast` runs everything else.
SYSTEM_MODULES = {
    "test_backfill_daemon", "test_bench", "test_daemon_e2e", "test_fairness", "test_fault_injection",
    "test_k8s_launcher", "test_object_storage", "test_pipeline", "test_postgres_instance", "test_spark_engine",
    "test_spark_object_storage", "test_ui_browser", "test_web_attacks", "test_web_auth", "test_web_guard",
    "test_web_isolation",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SYSTEM_MODULES:
            item.add_marker(pytest.mark.system)


# A fixed, complete day in the past, so results don't depend on when the suite runs.
END_DAY = dt.date(2026, 11, 20)


# The project the tests run (a team's pipeline, as projects/<name>/project.yaml declares one).
PROJECT = "team_a"


def make_project(name: str = PROJECT, window_days: int = 7, start: str = "2024-01-01", **fields) -> Project:
    document = {"name": name, "owners": [f"team:{name}"], "partitions_start": start, **fields}
    document["training"] = {"window_days": window_days, **fields.get("training", {})}
    return parse_project(document, "test")


@pytest.fixture
def project() -> Project:
    return make_project()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="local", storage_root=str(tmp_path / "storage"))


@pytest.fixture
def storage_root(settings: Settings) -> str:
    """The test project's own storage: its landing zone, quarantine, tables and models are under it."""
    root = Path(settings.layout.project(PROJECT).root)
    root.mkdir(parents=True)
    return str(root)


def project_assets(project: Project, *stages) -> list:
    """Some stages of a project's assets (e.g. `build_ingest_assets`), with the project's keys."""
    from algo_platform.pipeline.location import in_project
    from algo_platform.pipeline.partitions import daily_partitions

    partitions = daily_partitions(project.partitions_start)
    return in_project([d for stage in stages for d in stage(partitions)], project)


def make_events(rows: list[dict], day: dt.date = END_DAY) -> pd.DataFrame:
    """A raw_events-shaped frame from short dicts; unspecified columns get plausible values."""
    base_ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12)
    filled = []
    for number, row in enumerate(rows):
        filled.append(
            {
                "event_id": row.get("event_id", f"e{number}"),
                "user_id": row.get("user_id", 1),
                "item_id": row.get("item_id", 100),
                "event_type": row.get("event_type", "play"),
                "watch_ms": row.get("watch_ms", 5_000),
                "item_duration_ms": row.get("item_duration_ms", 10_000),
                "ts": row.get("ts", base_ts + pd.Timedelta(minutes=number)),
                "device": row.get("device", "ios"),
                "region": row.get("region", "eu-west"),
                "topic": row.get("topic", "music"),
                "source_file": "hand-made.parquet",
            }
        )
    frame = pd.DataFrame(filled)
    return frame.astype({"user_id": "Int64", "item_id": "Int64", "watch_ms": "Int64", "item_duration_ms": "Int64"})


@pytest.fixture
def projects_dir(tmp_path: Path, settings: Settings, monkeypatch) -> Path:
    """A projects folder holding the test project, used by the CLI (ALGO_PLATFORM_PROJECTS), with
    the CLI's storage root set to the test settings' one."""
    import yaml

    folder = tmp_path / "projects"
    (folder / PROJECT).mkdir(parents=True)
    document = make_project().model_dump(mode="json")
    (folder / PROJECT / "project.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(folder))
    monkeypatch.setenv("ALGO_PLATFORM_STORAGE", settings.storage_root)
    return folder


def ingest_and_retrain(defs, days: list, instance, epochs: int) -> tuple[list, object]:
    """The whole graph in process: each generated day's ingest, then the retrain of the last day."""
    import dagster as dg

    ingest_job: dg.JobDefinition = defs.resolve_job_def(f"{PROJECT}_ingest_job")
    ingest = [ingest_job.execute_in_process(partition_key=d.day, instance=instance) for d in days]
    retrain = defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
        partition_key=END_DAY.isoformat(),
        instance=instance,
        run_config={"ops": {"sequence_model": {"config": {"epochs": epochs}}}},
    )
    return ingest, retrain


@pytest.fixture(scope="module")
def web_platform(tmp_path_factory):
    """`algo-platform webserver` on a platform with two projects and a user of each role
    (tests/web_platform.py), one per test module."""
    from tests.web_platform import start_web_platform

    platform = start_web_platform(tmp_path_factory.mktemp("web"))
    try:
        yield platform
    finally:
        platform.processes.stop_all()
