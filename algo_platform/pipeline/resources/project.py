"""What the assets of a project need to know about it, as a resource (never a module global)."""

import dagster as dg

from algo_platform.core.schema import DEFAULT_INTERACTION_TYPES


class ProjectResource(dg.ConfigurableResource):
    """The project a code location serves: its name, and the choices its assets act on."""

    name: str
    window_days: str = "7"  # a number of days, or `all` (every day up to the evaluated one)
    interaction_types: list[str] = list(DEFAULT_INTERACTION_TYPES)
    evaluation: str = "next_day"  # the hold-out protocol (project.yaml: training.evaluation)
    extra_columns: dict[str, str] = {}  # column -> int64 | float64 | string, kept from upload to cleaned events
    feedback_column: str | None = None  # explicit feedback: events below the threshold are not interactions
    feedback_threshold: float | None = None

    def job_name(self, job: str) -> str:
        """A job's name in this project (`<project>_ingest_job`)."""
        return f"{self.name}_{job}"
