"""`algo-platform backfill`: ingest a range of partitions as one Dagster asset backfill, follow it,
and resume one whose runs failed.

The backfill is the one the UI's "Materialize" on the ingest job's assets creates: the daemon
runs it, the UI shows its progress, and each run covers up to `data.days_per_run` partitions (the
assets' BackfillPolicy). Dagster's own `dagster job backfill` would launch one run per partition.
Resuming is Dagster's "re-execute from failure" of an asset backfill (what the UI's button does):
a new backfill, tagged with its parent, of the partitions that were not materialized.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import PARENT_BACKFILL_ID_TAG, ROOT_BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id

from algo_platform.core.project import PROJECT_TAG, Project


def request_ingest_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    project: Project,
    first: str,
    last: str,
    extra_tags: dict[str, str] | None = None,
) -> tuple[str, int]:
    """Queue the ingest of every partition that holds a day from `first` to `last`; returns
    (backfill id, partitions).

    `extra_tags` go on the backfill and its runs (the CLI sets Dagster's `user` tag)."""
    try:
        keys = project.calendar.partition_keys(first, last)
    except ValueError as error:  # a range outside the partitions, and why
        raise ValueError(f"{project.name}: {error}") from None
    description = f"{len(keys)} partitions ({project.data.partition}s), up to {project.data.days_per_run} per run"
    backfill_id = _job_backfill(
        instance, defs, f"{project.name}_ingest_job", keys, {**project.run_tags, **(extra_tags or {})},
        f"{project.name}: ingest {first}..{last}", description,
    )  # fmt: skip
    return backfill_id, len(keys)


def _job_backfill(instance, defs, job_name: str, keys: list[str], tags: dict, title: str, description: str) -> str:
    """An asset backfill of a job's assets over `keys`, queued for the daemon; returns its id."""
    job = defs.resolve_job_def(job_name)
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=keys,
        asset_selection=sorted(job.asset_layer.executable_asset_keys),
        backfill_timestamp=time.time(),
        tags=tags,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title,
        description=description,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def request_retrain(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    project: Project,
    partition: str,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Queue `<project>_retrain_job`'s assets for one partition, as a backfill of that partition (so
    the daemon launches it and `follow_backfill` follows it like an ingest), with the job's own tags:
    one training per project at a time still holds. Returns the backfill id."""
    job_name = f"{project.name}_retrain_job"
    tags = {**(defs.resolve_job_def(job_name).tags or {}), **(extra_tags or {})}
    title = retrain_title(project, partition)
    return _job_backfill(instance, defs, job_name, [partition], tags, title, f"{job_name} for partition {partition}")


def retrain_title(project: Project, partition: str) -> str:
    return f"{project.name}: retrain for {partition}"


def running_retrain(instance: dg.DagsterInstance, project: Project, partition: str) -> str | None:
    """The id of a retrain of this partition that has not ended yet, if any: a second request follows
    it instead of training the same model again beside it."""
    title = retrain_title(project, partition)
    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=100):
        if backfill.tags.get(PROJECT_TAG) == project.name and backfill.title == title:
            return backfill.backfill_id
    return None


def latest_backfill(instance: dg.DagsterInstance, project: Project) -> PartitionBackfill | None:
    """The project's newest backfill (any status)."""
    for backfill in instance.get_backfills(limit=100):
        if backfill.tags.get(PROJECT_TAG) == project.name:
            return backfill
    return None


def resume_ingest_backfill(
    instance: dg.DagsterInstance, defs: dg.Definitions, backfill_id: str, extra_tags: dict[str, str] | None = None
) -> tuple[str, int]:
    """A new backfill of what `backfill_id` did not materialize (Dagster's re-execution from
    failure); returns (its id, asset partitions it requests). Refused while the backfill runs."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise ValueError(
            f"no backfill {backfill_id} in this instance (DAGSTER_HOME); `algo-platform backfill "
            "--status` lists the project's latest"
        )
    if backfill.status not in BULK_ACTION_TERMINAL_STATUSES:
        raise ValueError(
            f"backfill {backfill_id} is still {backfill.status.value.lower()}: wait for it to end "
            "(algo-platform backfill --wait) or cancel it in the UI, then resume"
        )
    data = backfill.get_asset_backfill_data(defs.resolve_asset_graph())
    missing = data.target_subset - data.materialized_subset
    if missing.num_partitions_and_non_partitioned_assets == 0:
        raise ValueError(f"backfill {backfill_id} materialized every partition it asked for: nothing to resume")
    resumed = PartitionBackfill.from_asset_graph_subset(
        backfill_id=make_new_backfill_id(),
        asset_graph_subset=missing,
        dynamic_partitions_store=instance,
        tags={
            **backfill.tags,
            **(extra_tags or {}),
            PARENT_BACKFILL_ID_TAG: backfill.backfill_id,
            ROOT_BACKFILL_ID_TAG: backfill.tags.get(ROOT_BACKFILL_ID_TAG, backfill.backfill_id),
        },
        backfill_timestamp=time.time(),
        title=f"Re-execution of {backfill.title}" if backfill.title else None,
        description=backfill.description,
        run_config=backfill.run_config,
    )
    instance.add_backfill(resumed)
    return resumed.backfill_id, missing.num_partitions_and_non_partitioned_assets


@dataclass(frozen=True)
class BackfillProgress:
    """Where a backfill stands: its status, and asset partitions done, failed and asked for."""

    status: BulkActionStatus
    done: int
    failed: int
    total: int
    runs: int
    failed_runs: int

    @property
    def finished(self) -> bool:
        return self.status in BULK_ACTION_TERMINAL_STATUSES

    @property
    def complete(self) -> bool:
        return self.finished and self.done == self.total


def backfill_progress(instance: dg.DagsterInstance, defs: dg.Definitions, backfill_id: str) -> BackfillProgress:
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise ValueError(f"no backfill {backfill_id} in this instance")
    data = backfill.get_asset_backfill_data(defs.resolve_asset_graph())
    runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    return BackfillProgress(
        status=backfill.status,
        done=data.materialized_subset.num_partitions_and_non_partitioned_assets,
        failed=data.failed_and_downstream_subset.num_partitions_and_non_partitioned_assets,
        total=data.target_subset.num_partitions_and_non_partitioned_assets,
        runs=len(runs),
        failed_runs=sum(r.dagster_run.status == dg.DagsterRunStatus.FAILURE for r in runs),
    )


def follow_backfill(
    read: Callable[[], BackfillProgress],
    report: Callable[[BackfillProgress, float], None],
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stalled: Callable[[float], None] | None = None,
    stall_seconds: float = 120.0,
) -> BackfillProgress:
    """Read a backfill's progress until it ends, reporting each change (with the seconds since the
    start), and calling `stalled` once if no run has started after `stall_seconds` (no daemon?)."""
    began, last, warned = clock(), None, False
    while True:
        progress = read()
        if progress != last:
            report(progress, clock() - began)
            last = progress
        if progress.finished:
            return progress
        if stalled and not warned and progress.runs == 0 and clock() - began >= stall_seconds:
            stalled(clock() - began)
            warned = True
        sleep(poll_seconds)


def failure_cause(instance: dg.DagsterInstance, backfill_id: str) -> str | None:
    """Why a backfill did not materialize everything, in a line or two: the daemon's own error (a
    code location it could not load, a partition it did not know), else the first failed run's
    failing step and its message; None when nothing failed."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is not None and backfill.error is not None:
        return f"the daemon stopped it: {_first_lines(backfill.error.message)}"
    failed = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/backfill": backfill_id}, statuses=[dg.DagsterRunStatus.FAILURE]), limit=1
    )
    return run_failure(instance, failed[0].dagster_run.run_id) if failed else None


def run_failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """A failed run's first failing step and its error message (the run's own failure if no step failed)."""
    steps = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in steps:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None:
            return f"run {run_id[:8]}, step {event.step_key}: {_first_lines(error.message)}{_raised(instance, run_id)}"
    failures = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = failures[0].event_log_entry.message if failures else "no failure recorded"
    return f"run {run_id[:8]} failed: {_first_lines(message) if message else 'no message'}"


def _raised(instance: dg.DagsterInstance, run_id: str) -> str:
    """What a program launched through Pipes raised, as it reported it on closing (Dagster records it
    as an engine event): the reason a step's "failed with code 1" leaves out."""
    engine = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    for record in reversed(engine):
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None and "[pipes]" in (record.event_log_entry.message or ""):
            return f"; the program raised {_first_lines(error.message, lines=2)}"
    return ""


def _first_lines(message: str, lines: int = 3) -> str:
    """The start of an error message (Dagster puts what failed on the line after its headline)."""
    return " ".join(line.strip() for line in message.strip().splitlines()[:lines] if line.strip())[:600]
