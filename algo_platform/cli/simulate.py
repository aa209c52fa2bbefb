"""Simulated days of a project's life with its users answering what they are served
(`algo-platform release simulate`, and the closed-loop test).

Each day: the generator's events of the day land together with the plays its users give to the
lists served the day before (`datagen.respond_to_lists`: an item is played by the user's hidden
taste for its topic, so a better model earns more plays); then the ingest job runs (cleaning,
checks, and `release_report`, which judges the release and decides) and the retrain job (a new
candidate, the champion or a release, and the next lists, by arm). Nothing is short-cut: the
project's own jobs run in this process on the Dagster instance given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.layout import ProjectLayout
from algo_platform.core.project import Project
from algo_platform.core.settings import Settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import World, land_day_with_feedback


@dataclass
class SimulatedDay:
    day: str
    ingest: dg.ExecuteInProcessResult
    retrain: dg.ExecuteInProcessResult

    @property
    def reports(self) -> dict[str, dict]:
        """The day's release reports (next-item's `release_report`, a task's `<task>_release_report`):
        their metadata, for those that judged a release."""
        found = {}
        for event in self.ingest.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.path[-1]
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            if name.endswith("release_report") and metadata.get("decision", "none") != "none":
                found[name] = metadata
        return found


class ReleaseSimulation:
    """Days of one project, one after another, on `instance`."""

    def __init__(self, project: Project, settings: Settings, instance: dg.DagsterInstance, world: World,
                 events_per_day: int, seed: int):  # fmt: skip
        if project.data.partition != "day":
            raise ValueError(f"project {project.name} is partitioned by {project.data.partition}; simulate a daily one")
        self.project, self.instance, self.world = project, instance, world
        self.events_per_day, self.seed = events_per_day, seed
        self.root = settings.layout.project(project.name).root
        self.defs = build_project_definitions(project, settings)

    def served(self, day: dt.date):
        """The lists built for `day` (served the day after) that its users answer: the next-item task's
        and each further task's (user_id, item_ids), or None before anything was served."""
        import pyarrow as pa

        tables = []
        for asset in ("user_recommendations", *(f"{task.name}_recommendations" for task in self.project.tasks)):
            path = UPath(ProjectLayout(self.root).table(asset, day.isoformat()))
            if path.exists():
                with path.open("rb") as handle:
                    tables.append(pq.read_table(handle, columns=["user_id", "item_ids"]))
        return pa.concat_tables(tables, promote_options="permissive") if tables else None

    def job(self, name: str, day: dt.date) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(f"{self.project.name}_{name}")
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run's log is in the instance
        return job.execute_in_process(run_config=quiet, partition_key=day.isoformat(), instance=self.instance,
                                      raise_on_error=False)  # fmt: skip

    def live(self, day: dt.date) -> SimulatedDay:
        """One day: its events and the plays of yesterday's lists land, then ingest and retrain."""
        land_day_with_feedback(self.root, self.world, day, self.events_per_day, self.seed,
                               self.served(day - dt.timedelta(days=1)))  # fmt: skip
        ingest = self.job("ingest_job", day)
        retrain = self.job("retrain_job", day) if ingest.success else ingest
        return SimulatedDay(day.isoformat(), ingest, retrain)
