"""A project's Dagster code location: every asset, check, job, schedule, sensor and resource of one
team, built from its project.yaml by the platform's factories.

`projects/<name>/definitions.py` (written by `algo-platform project new`) calls
`load_project_definitions(__file__)`; workspace.yaml lists each of those files as a code location.
Everything the project makes is its own: asset keys under its name (`movies/raw_events`), groups
`<name>_<stage>`, its owners and tags, jobs `<name>_ingest_job` / `<name>_retrain_job`, storage
under `<storage>/projects/<name>/`, MLflow names `<name>-next_item` (next-item task),
`<name>-<task>` (each further task).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from algo_platform import __version__
from algo_platform.assets.engagement import build_engagement_assets
from algo_platform.assets.evaluation import build_evaluation_assets
from algo_platform.assets.events import build_ingest_assets
from algo_platform.assets.features import build_feature_assets
from algo_platform.assets.model import build_model_asset
from algo_platform.assets.profile import build_profile_asset
from algo_platform.assets.program_model import build_program_model_asset
from algo_platform.assets.release import build_release_report
from algo_platform.assets.sequences import build_sequence_assets
from algo_platform.assets.serving import build_serving_assets
from algo_platform.assets.spark_stage import build_spark_stage_assets
from algo_platform.core.fleet import FleetError, load_fleet, local_pool
from algo_platform.core.project import PROJECT_TAG, Project, ProjectError, load_project
from algo_platform.core.schema import CANONICAL_SCHEMA, COLUMN_DESCRIPTIONS
from algo_platform.core.settings import Settings, load_settings
from algo_platform.ingest.backfill_size import with_run_size
from algo_platform.jobs.automation import build_automation, build_reaper_sensor
from algo_platform.jobs.project_jobs import EXECUTOR, build_jobs
from algo_platform.resources.environment import build_resources
from algo_platform.resources.partitions import PeriodPartitions, project_partitions, refuse_a_change_of_grain

Definition = dg.AssetsDefinition | dg.AssetChecksDefinition
# The tables whose columns are the canonical event schema (shown in the catalog with descriptions).
EVENT_TABLES = ("raw_events", "cleaned_events")
# Recommendations are due every morning (in the project's timezone).
RECOMMENDATIONS_DEADLINE = "0 6 * * *"


def event_columns() -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=field.name, type=str(field.type), description=COLUMN_DESCRIPTIONS.get(field.name))
            for field in CANONICAL_SCHEMA
        ]
    )


def in_project(definitions: Sequence[Definition], project: Project) -> list[Definition]:
    """The platform's assets and checks as the project's own: keys under its name, its groups,
    owners, tags and a code version on every asset."""
    # Their own keys, what their checks target and what they read: all of it is the project's.
    keys = {key for d in definitions for key in (*d.keys, *d.dependency_keys)}
    keys |= {check.asset_key for d in definitions for check in d.check_keys}
    replacements = {key: key.with_prefix(project.name) for key in keys}
    tags = {PROJECT_TAG: project.name}

    def own(spec: dg.AssetSpec) -> dg.AssetSpec:
        metadata = dict(spec.metadata)
        if spec.key.path[-1] in EVENT_TABLES:
            metadata["dagster/column_schema"] = event_columns()
        if spec.key.path[-1] == "user_recommendations":
            # Due every morning: the UI flags the asset when a day's recommendations are late.
            spec = spec.replace_attributes(
                freshness_policy=dg.FreshnessPolicy.cron(
                    deadline_cron=RECOMMENDATIONS_DEADLINE,
                    lower_bound_delta=dt.timedelta(hours=24),
                    timezone=project.schedule.timezone,
                )
            )
        return spec.replace_attributes(
            owners=project.owners,
            tags={**spec.tags, **tags},
            group_name=f"{project.name}_{spec.group_name}",
            code_version=__version__,
            metadata=metadata,
        )

    owned = []
    for definition in definitions:
        renamed = definition.with_attributes(asset_key_replacements=replacements)
        owned.append(renamed if isinstance(renamed, dg.AssetChecksDefinition) else renamed.map_asset_specs(own))
    return owned


def build_data_stage(project: Project, partitions: PeriodPartitions) -> list[Definition]:
    """raw_events, then cleaned events, their profile and features on the project's engine (polars or Spark)."""
    if project.data.engine == "spark":
        return [
            *build_ingest_assets(partitions, project.data, with_cleaning=False),
            *build_spark_stage_assets(partitions),
            build_profile_asset(partitions, project.data),
        ]
    return [
        *build_ingest_assets(partitions, project.data),
        build_profile_asset(partitions, project.data),
        *build_feature_assets(partitions, project.data),
    ]


def training_pool(project: Project, settings: Settings) -> str:
    """The training step's Dagster pool: the project's, or locally its team queue's (on Kubernetes,
    Kueue holds the team's quota and lets idle GPUs be borrowed, which a pool limit would not)."""
    if settings.env == "local" and project.compute.queue:
        return local_pool(project.compute.queue)
    return project.compute.pool


def refuse_what_the_fleet_forbids(project: Project) -> None:
    """A project on a team queue keeps within the fleet's rules: its queue and priority exist, and
    it does not hold idle GPUs longer than platform admins allow."""
    if project.compute.queue is None:
        return  # no fleet file needed
    try:
        load_fleet().check_project(project.name, project.compute)
    except FleetError as error:
        raise ProjectError(f"{project.calendar.project_file}: {error}") from None


def build_next_item_model(project: Project, partitions: PeriodPartitions, pool: str) -> dg.AssetsDefinition:
    """sequence_model: the platform's trainer of the project's family, or the team's own program."""
    if project.model.command:
        return build_program_model_asset(partitions, project, pool)
    return build_model_asset(partitions, project.hyperparameters(), pool)


def build_project_definitions(project: Project, settings: Settings | None = None) -> dg.Definitions:
    """Everything one project runs, from its declaration and the platform's settings."""
    settings = settings or load_settings()
    refuse_a_change_of_grain(project, settings.layout.project(project.name))
    refuse_what_the_fleet_forbids(project)
    # `days_per_run: auto` becomes a number here, from what the project's imports recorded.
    project = with_run_size(project, settings.layout.project(project.name).root)
    partitions = project_partitions(project.partitions_start, project.data.partition)
    platform_assets = [
        *build_data_stage(project, partitions),
        *build_sequence_assets(partitions, project.training),
        build_next_item_model(project, partitions, training_pool(project, settings)),
        *build_evaluation_assets(partitions),
        *build_serving_assets(partitions, project.release),
        *(definition for task in project.tasks for definition in build_engagement_assets(project, task, partitions)),
        *(build_release_report(partitions, task.release, task) for task in project.tasks if task.release),
    ]
    owned = in_project(platform_assets, project)
    assets = [d for d in owned if not isinstance(d, dg.AssetChecksDefinition)]
    checks = [d for d in owned if isinstance(d, dg.AssetChecksDefinition)]
    ingest, retrain = build_jobs(project, partitions)
    try:
        schedule, sensor = build_automation(
            project, ingest, retrain, settings.sensor_interval_seconds, settings.landing_settle_seconds
        )
    except dg.DagsterInvalidDefinitionError as error:  # a five-field cron Dagster refuses, e.g. minute 61
        raise ProjectError(f"{project.calendar.project_file}: schedule.cron: {error}") from None
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[ingest, retrain],
        schedules=[schedule],
        sensors=[sensor, *([build_reaper_sensor(project, settings.k8s_namespace)] if settings.env != "local" else [])],
        resources=build_resources(settings, project),
        # Runs the UI or a backfill launches on an asset selection (Dagster's implicit asset job)
        # run in process too, as the project's own jobs do: a process per step costs seconds each.
        executor=EXECUTOR,
    )


def load_project_definitions(path: str | Path) -> dg.Definitions:
    """The code location of the project whose folder holds `path` (its definitions.py or project.yaml)."""
    path = Path(path)
    return build_project_definitions(load_project(path.parent if path.is_file() else path))
