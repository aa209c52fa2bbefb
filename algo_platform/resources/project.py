"""What the assets of a project need to know about it, as a resource (never a module global)."""

import dagster as dg


class ProjectResource(dg.ConfigurableResource):
    """The project a code location serves: its name, and the choices its assets act on."""

    name: str
    window_days: int = 7
    interaction_types: list[str] = ["play", "like", "share", "comment", "follow"]
    evaluation: str = "next_day"  # the hold-out protocol (project.yaml: training.evaluation)

    def job_name(self, job: str) -> str:
        """A job's name in this project (`<project>_ingest_job`)."""
        return f"{self.name}_{job}"
