"""`algo-platform backfill`: ingest a range of days as one Dagster asset backfill.

The backfill is the one the UI's "Materialize" on the ingest job's assets creates: the daemon
runs it, the UI shows its progress, and each run covers up to `data.days_per_run` days (the
assets' BackfillPolicy). Dagster's own `dagster job backfill` would launch one run per day.
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from algo_platform.core.project import Project


def request_ingest_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    project: Project,
    first: str,
    last: str,
    extra_tags: dict[str, str] | None = None,
) -> tuple[str, int]:
    """Queue the ingest of every day from `first` to `last`; returns (backfill id, days).

    `extra_tags` go on the backfill and its runs (the CLI sets Dagster's `user` tag)."""
    job = defs.resolve_job_def(f"{project.name}_ingest_job")
    partitions = job.partitions_def
    assert partitions is not None
    for day in (first, last):
        if not project.calendar.is_partition(day):
            raise ValueError(f"{project.name}: {project.calendar.not_a_partition(day)}")
    days = partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=days,
        asset_selection=sorted(job.asset_layer.executable_asset_keys),
        backfill_timestamp=time.time(),
        tags={**project.run_tags, **(extra_tags or {})},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"{project.name}: ingest {first}..{last}",
        description=f"{len(days)} days, up to {project.data.days_per_run} per run",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id, len(days)
