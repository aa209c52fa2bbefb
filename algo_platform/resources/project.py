"""What the assets of a project need to know about it, as a resource (never a module global)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from algo_platform.core.calendar import ProjectCalendar
from algo_platform.core.project import Project


class ProjectResource(dg.ConfigurableResource):
    """The project a code location serves: its name, and the choices its assets act on. Built from
    the project file only (`of`): the defaults are project.yaml's, declared in core/project.py."""

    name: str
    partitions_start: str  # the first day of events (YYYY-MM-DD)
    partition: str  # the partition grain: day, week or month
    window_days: str  # a number of days, or `all` (every day up to the evaluated one)
    interaction_types: list[str]
    evaluation: str  # the hold-out protocol (project.yaml: training.evaluation)
    extra_columns: dict[str, str]  # column -> int64 | float64 | string, kept from upload to cleaned events
    feedback_column: str | None  # explicit feedback: events below the threshold are not interactions
    feedback_threshold: float | None
    exclude_seen: bool  # evaluation masks each user's already-seen items (training.exclude_seen)

    @classmethod
    def of(cls, project: Project) -> ProjectResource:
        feedback = project.data.feedback
        return cls(
            name=project.name,
            partitions_start=project.partitions_start.isoformat(),
            partition=project.data.partition,
            window_days=str(project.training.window_days),
            interaction_types=list(project.data.interaction_types),
            evaluation=project.training.evaluation,
            extra_columns=dict(project.data.extra_columns),
            feedback_column=feedback.column if feedback else None,
            feedback_threshold=feedback.threshold if feedback else None,
            exclude_seen=project.exclude_seen,
        )

    @property
    def calendar(self) -> ProjectCalendar:
        """The project's partitions: `calendar.period(key)` is the span of days a partition holds."""
        return ProjectCalendar(dt.date.fromisoformat(self.partitions_start), grain=self.partition)  # type: ignore[arg-type]

    def job_name(self, job: str) -> str:
        """A job's name in this project (`<project>_ingest_job`)."""
        return f"{self.name}_{job}"
