"""Partitioning shared by every per-day asset."""

import datetime as dt
import functools
import warnings

import dagster as dg

from algo_platform.core.calendar import ProjectCalendar

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"


@functools.cache
def daily_partitions(start: dt.date | str) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from `start`; the newest partition is yesterday, the latest complete day."""
    return dg.DailyPartitionsDefinition(start_date=str(start), timezone="UTC")


def compact_days(days: list[str], most: int = 12) -> str:
    """Sorted ISO days as ranges: `2026-01-01..2026-01-05, 2026-02-03` (and how many more)."""
    runs: list[list[str]] = []
    for day in days:
        if runs and dt.date.fromisoformat(runs[-1][-1]) + dt.timedelta(days=1) == dt.date.fromisoformat(day):
            runs[-1].append(day)
        else:
            runs.append([day])
    shown = [run[0] if len(run) == 1 else f"{run[0]}..{run[-1]} ({len(run)} days)" for run in runs[:most]]
    more = f", and {len(runs) - most} more ranges" if len(runs) > most else ""
    return ", ".join(shown) + more


def is_partition(partitions_def: dg.PartitionsDefinition, day: str) -> bool:
    try:
        return partitions_def.has_partition_key(day)
    except ValueError:  # not a date at all
        return False


def require_run_day(run: dg.DagsterRun | None, partitions_def: dg.DailyPartitionsDefinition) -> None:
    """Fail a run that has no day, or a day that is not a partition, before any step does work.

    Without this a run launched without a partition fails deep inside a step with "Cannot access
    partition_key for a non-partitioned run", and one for a day outside the partitions fails on
    whatever first reads that day."""
    if run is None or RANGE_START_TAG in run.tags:
        return
    day = run.tags.get(PARTITION_TAG)
    if day is None:
        raise dg.Failure(
            description=(
                f"run of {run.job_name} has no partition: every job here processes one day. Launch it for a day "
                "(UI: choose a partition in the launchpad; CLI: --partition YYYY-MM-DD)"
            )
        )
    if not is_partition(partitions_def, day):
        calendar = ProjectCalendar(dt.date.fromisoformat(partitions_def.get_first_partition_key()))
        raise dg.Failure(description=f"{run.job_name}: {calendar.not_a_partition(day)}")


# Checks on daily assets must validate the run's partition, which needs `partitions_def` on the
# check: a preview feature in Dagster 1.13 (without it the check loads the first partition).
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
# Dagster's own check definitions pass a beta parameter when a Definitions object is built; not ours to fix.
warnings.filterwarnings("ignore", message="Parameter `execution_type`", category=dg.BetaWarning)
# BackfillPolicy is beta in 1.13; multi-run with one partition per run is the long-standing behaviour.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
