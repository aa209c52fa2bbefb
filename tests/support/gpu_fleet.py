"""A platform's GPU fleet as the GPU page finds it, without Kubernetes: projects on team queues,
the team pools sized by `algo-platform fleet local-pools`, every slot of recsys claimed and two
more training steps waiting, and training materializations spread over the last 40 days."""

import datetime as dt
import logging
import os
import subprocess
from pathlib import Path

import dagster as dg
import yaml

from algo_platform.core.project import PROJECT_TAG
from tests.support.factories import PROJECT
from tests.support.processes import BIN

REPO = Path(__file__).parents[2]
FLEET = REPO / "deploy" / "gpu-fleet.yaml"
OTHER_PROJECT = "team_b"
# (days ago, GPU-hours, utilisation %) of team_a's training runs
RUNS = [(1, 2.0, 80.0), (1, 1.0, 20.0), (3, 4.0, 60.0), (12, 0.5, 90.0), (40, 9.0, 50.0)]


def _queue(projects: Path, project: str, queue: str) -> None:
    path = projects / project / "project.yaml"
    document = yaml.safe_load(path.read_text())
    document.setdefault("compute", {})["queue"] = queue
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _materialized(instance: dg.DagsterInstance, key: list[str], when: dt.datetime, metadata: dict) -> None:
    """A model materialization as of `when` (the instance stamps events with the time they are stored)."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="__RUNLESS_JOB__",
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(key, metadata=metadata)),
    )
    instance.store_event(EventLogEntry(error_info=None, level=logging.INFO, user_message="", run_id="",
                                       timestamp=when.timestamp(), dagster_event=event))  # fmt: skip


def prepare_gpu_fleet(env: dict) -> None:
    """team_a on recsys, team_b on ads; recsys' 8 slots claimed and a step of each project waiting."""
    from dagster._core.storage.dagster_run import DagsterRun

    projects = Path(env["ALGO_PLATFORM_PROJECTS"])
    _queue(projects, PROJECT, "recsys")
    _queue(projects, OTHER_PROJECT, "ads")
    subprocess.run([str(BIN / "algo-platform"), "fleet", "local-pools"], env=env, check=True, capture_output=True)
    os.environ["DAGSTER_HOME"], previous = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            now = dt.datetime.now(dt.UTC)
            for days_ago, hours, utilisation in RUNS:
                metadata = {"gpu_hours": hours, "gpu_utilization_mean_pct": utilisation, "gpus": 1.0}
                _materialized(instance, [PROJECT, "sequence_model"], now - dt.timedelta(days=days_ago), metadata)
            for slot, project in enumerate([PROJECT] * 8 + [PROJECT, OTHER_PROJECT]):
                # recsys' quota is 8: the ninth and tenth training steps wait (team_b's here only to
                # show that another project's run is not named)
                run_id = f"run-{slot:02d}-{project}"
                instance.add_run(DagsterRun(job_name=f"{project}_train_job", run_id=run_id,
                                            tags={PROJECT_TAG: project}))  # fmt: skip
                instance.event_log_storage.claim_concurrency_slot("gpu-recsys", run_id, "sequence_model")
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous
