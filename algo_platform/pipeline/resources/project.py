"""What the assets of a project need to know about it, as a resource (never a module global)."""

from __future__ import annotations

import dagster as dg

from algo_platform.core.project import Project


class ProjectResource(dg.ConfigurableResource):
    """The project a code location serves: its name, and the choices its assets act on. Built from
    the project file only (`of`): the defaults are project.yaml's, declared in core/project.py."""

    name: str
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
            window_days=str(project.training.window_days),
            interaction_types=list(project.data.interaction_types),
            evaluation=project.training.evaluation,
            extra_columns=dict(project.data.extra_columns),
            feedback_column=feedback.column if feedback else None,
            feedback_threshold=feedback.threshold if feedback else None,
            exclude_seen=project.exclude_seen,
        )

    def job_name(self, job: str) -> str:
        """A job's name in this project (`<project>_ingest_job`)."""
        return f"{self.name}_{job}"
