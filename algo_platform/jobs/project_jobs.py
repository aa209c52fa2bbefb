"""Asset jobs of a project: ingest one day, and retrain on the window ending at one day."""

from typing import Any

import dagster as dg

from algo_platform.core.project import TRAINING_TAG, Project, Task
from algo_platform.resources.partitions import PeriodPartitions

# One process per run, not per step: the steps are short pandas/GX work (training itself runs in
# its own process through Pipes), and a process per step cost 20.8 s vs 5.3 s for one day's
# ingest run of 5,000 events on 2 cores.
EXECUTOR = dg.in_process_executor


def task_assets(task: Task) -> list[str]:
    """A further task's assets (algo_platform.assets.engagement), retrained with the project's job."""
    return [f"{task.name}_{stage}" for stage in ("examples", "model", "evaluation", "champion", "recommendations")]


# What dg.define_asset_job returns: its class is not part of Dagster's public API.
AssetJob = Any

INGEST_ASSETS = ("raw_events", "cleaned_events", "data_profile", "user_features", "item_features")
TRAINING_ASSETS = (
    "training_sequences",
    "item_vocabulary",
    "sequence_model",
    "evaluation_report",
    "champion_model",
    "user_recommendations",
)


def release_reports(project: Project) -> list[str]:
    """The release reports of the project's tasks that grey-release (docs/grey-release.md)."""
    reports = ["release_report"] if project.release else []
    return reports + [f"{task.name}_release_report" for task in project.tasks if task.release]


def build_jobs(project: Project, partitions: PeriodPartitions) -> tuple[AssetJob, ...]:
    """`<project>_ingest_job` and `<project>_retrain_job`, tagged with the project (and its priority)."""
    prefix = [project.name]
    ingest = dg.define_asset_job(
        f"{project.name}_ingest_job",
        # With a grey release, each day's feedback is judged as soon as the day is ingested.
        selection=dg.AssetSelection.assets(*(prefix + [name] for name in (*INGEST_ASSETS, *release_reports(project)))),
        partitions_def=partitions,
        executor_def=EXECUTOR,
        tags=project.run_tags,
        description="Landing-zone files of one day -> raw, cleaned events -> their profile, user and item features.",
    )
    retrain = dg.define_asset_job(
        f"{project.name}_retrain_job",
        # The run queue allows one run per value of this tag at a time: one training per project
        # (dagster_home/dagster.yaml), so no team's backlog starves another's.
        tags={**project.run_tags, TRAINING_TAG: project.name},
        selection=dg.AssetSelection.assets(
            *(prefix + [name] for name in (*TRAINING_ASSETS, *(n for task in project.tasks for n in task_assets(task))))
        ),
        partitions_def=partitions,
        executor_def=EXECUTOR,
        description=(
            "Sequences over the window ending at the day -> model -> evaluation -> champion -> recommendations."
        ),
    )
    return ingest, retrain
