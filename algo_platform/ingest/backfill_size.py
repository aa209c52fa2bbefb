"""How many partitions one backfill run ingests when a project leaves it to the platform
(`data.days_per_run: auto`, the default).

Each run costs seconds to start whatever it holds, so a history of small days wants many per run,
while a day that fills a machine wants one. The only sizes known before a backfill are those an
import recorded (its manifest's rows per day): the runs take up to `ROWS_PER_RUN` rows each, and
at least `PARALLEL_RUNS` runs share the history so the run queue's slots all work. Without an
import (days that land one at a time) and on Spark, a run takes one partition.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass

from algo_platform.core.calendar import Grain, period_end
from algo_platform.core.project import Project
from algo_platform.ingest.importer import completed_imports

ROWS_PER_RUN = 2_000_000
PARALLEL_RUNS = 2  # the shipped run queue's slots
MOST_PER_RUN = 1000


@dataclass(frozen=True)
class RunSize:
    partitions: int
    why: str


def partitions_per_run(project: Project, storage_root: str) -> RunSize:
    """The project's `days_per_run`, resolved: its own number, or the automatic choice and why."""
    data = project.data
    grain = data.partition
    if data.days_per_run != "auto":
        return RunSize(data.days_per_run, f"data.days_per_run: {data.days_per_run}")
    if data.engine == "spark":
        return RunSize(1, "auto: engine spark runs one day per run")
    rows: Counter = Counter()
    for manifest in completed_imports(storage_root):
        for day, count in manifest["rows_per_day"].items():
            rows[project.calendar.period_of(day).start] += int(count)
    if not rows:
        return RunSize(1, f"auto: no import recorded, one {grain} per run")
    spanned = _periods_from(min(rows), max(rows), grain)
    per_partition = sum(rows.values()) / len(rows)
    by_rows = max(1, int(ROWS_PER_RUN // max(per_partition, 1)))
    partitions = max(1, min(by_rows, math.ceil(spanned / PARALLEL_RUNS), MOST_PER_RUN))
    return RunSize(
        partitions,
        f"auto: the import holds {sum(rows.values()):,} rows in {len(rows):,} of {spanned:,} {grain}s "
        f"({per_partition:,.0f} per {grain} with data)",
    )


def _periods_from(first: dt.date, last: dt.date, grain: Grain) -> int:
    """How many partitions run from the one starting on `first` to the one starting on `last`."""
    count, start = 1, first
    while start < last:
        start = period_end(start, grain)
        count += 1
    return count


def with_run_size(project: Project, storage_root: str) -> Project:
    """The project with `data.days_per_run` a number (auto resolved), as its assets and jobs need it."""
    size = partitions_per_run(project, storage_root)
    return project.model_copy(update={"data": project.data.model_copy(update={"days_per_run": size.partitions})})
