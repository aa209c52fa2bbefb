"""Partitioning shared by every partitioned asset: one partition per day, week or month (data.partition)."""

import datetime as dt
import functools
import json
import warnings

import dagster as dg

from algo_platform.core.atomic import write_atomically
from algo_platform.core.calendar import Grain, ProjectCalendar, period_start
from algo_platform.core.layout import ProjectLayout
from algo_platform.core.project import Project, ProjectError

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"


PeriodPartitions = dg.DailyPartitionsDefinition | dg.WeeklyPartitionsDefinition | dg.MonthlyPartitionsDefinition


@functools.cache
def project_partitions(start: dt.date | str, grain: Grain = "day") -> PeriodPartitions:
    """One partition per UTC period from the one holding `start`, each named by its first day; the
    newest is the latest complete period (yesterday, last week, last month)."""
    first = period_start(dt.date.fromisoformat(str(start)), grain).isoformat()
    if grain == "week":  # ISO weeks: Monday is day 1
        return dg.WeeklyPartitionsDefinition(start_date=first, timezone="UTC", day_offset=1)
    if grain == "month":
        return dg.MonthlyPartitionsDefinition(start_date=first, timezone="UTC", day_offset=1)
    return dg.DailyPartitionsDefinition(start_date=first, timezone="UTC")


def grain_of(partitions_def: dg.PartitionsDefinition) -> Grain:
    if isinstance(partitions_def, dg.WeeklyPartitionsDefinition):
        return "week"
    if isinstance(partitions_def, dg.MonthlyPartitionsDefinition):
        return "month"
    return "day"


def stored_grain(layout: ProjectLayout) -> Grain | None:
    """The grain the project's tables are stored in: as recorded, `day` for tables stored before
    grains existed, None when nothing is stored yet."""
    if layout.partitioning.exists():
        return json.loads(layout.partitioning.read_text())["partition"]
    raw = layout.stored_tables("raw_events")
    return "day" if raw.exists() and any(raw.iterdir()) else None


def record_grain(layout: ProjectLayout, grain: Grain) -> None:
    """Note the grain once the first partition is stored."""
    if not layout.partitioning.exists():
        write_atomically(layout.partitioning, json.dumps({"partition": grain}).encode())


def refuse_a_change_of_grain(project: Project, layout: ProjectLayout) -> None:
    """A project's stored partitions are days, weeks or months: read under another grain they would
    be misread (a day's table taken for a month's), so a change is refused, naming the fix."""
    stored = stored_grain(layout)
    if stored is not None and stored != project.data.partition:
        raise ProjectError(
            f"{project.calendar.project_file}: data.partition is {project.data.partition}, but {project.name}'s "
            f"tables in {layout.root} are stored by {stored}. Set data.partition: {stored} back, or move "
            f"{layout.root} aside (its landing folders can be copied into a new project and backfilled by "
            f"{project.data.partition})"
        )


def partition_of(day: str, partitions_def: dg.PartitionsDefinition | None) -> str:
    """The key of the partition that holds `day` (the day itself at day grain)."""
    if partitions_def is None:
        return day
    return period_start(dt.date.fromisoformat(day), grain_of(partitions_def)).isoformat()


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


def require_run_day(run: dg.DagsterRun | None, partitions_def: PeriodPartitions) -> None:
    """Fail a run that has no partition, or a key that is not a partition, before any step does work.

    Without this a run launched without a partition fails deep inside a step with "Cannot access
    partition_key for a non-partitioned run", and one for a day outside the partitions fails on
    whatever first reads that day."""
    if run is None or RANGE_START_TAG in run.tags:
        return
    day = run.tags.get(PARTITION_TAG)
    if day is None:
        raise dg.Failure(
            description=(
                f"run of {run.job_name} has no partition: every job here processes one partition. Launch it for one "
                "(UI: choose a partition in the launchpad; CLI: --partition YYYY-MM-DD, the period's first day)"
            )
        )
    if not is_partition(partitions_def, day):
        first = dt.date.fromisoformat(partitions_def.get_first_partition_key())
        calendar = ProjectCalendar(first, grain=grain_of(partitions_def))
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
# `window_days: all` clips its window at the first partition: beta in 1.13, stable behaviour since 1.5.
warnings.filterwarnings("ignore", message="Parameter `allow_nonexistent_upstream_partitions`", category=dg.BetaWarning)
