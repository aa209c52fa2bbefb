"""A grey release as a project admin sees and steers it, outside a run: `algo-platform release ...`
and `/platform/releases/<project>` both come here.

What it shows is what the pipeline recorded: the release's state (the registered model's tags), and
each day's report (the `release_report` materializations in the Dagster instance: the metric per
arm over the stage so far, the effect with its always-valid interval, the decision and why). What
it changes goes through the same `apply` as the report's own decisions: aliases, version tags, the
routing pyfunc and the audit log, under the admin's name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from algo_platform.assets.release import apply, report_names, state_of
from algo_platform.core.project import NEXT_ITEM_TASK, Project, Release, Task
from algo_platform.core.settings import Settings
from algo_platform.release.decisions import Decision, ReleaseActionError, ReleaseState, by_hand, plan_of, served_share
from algo_platform.resources.tracking import ExperimentTracking

REPORT_DAYS = 400  # the latest reports read


@dataclass(frozen=True)
class ReportDay:
    day: str
    experiment: str
    stage_percent: float
    decision: str
    why: str
    status: str
    champion_mean: float
    challenger_mean: float
    effect: float
    low: float
    high: float
    champion_users: int
    challenger_users: int


@dataclass(frozen=True)
class ReleaseView:
    state: ReleaseState | None  # the last release, whatever its status; None: never one
    served_percent: float  # the challenger's share of users served now
    champion_version: str | None
    stages: tuple[float, ...]
    days: list[ReportDay]  # the release's daily reports, oldest first


def released_task(project: Project, task_name: str) -> tuple[Task | None, Release]:
    """The task (None: next-item) and its release plan, or why it has none."""
    if task_name == NEXT_ITEM_TASK:
        task, release = None, project.release
    else:
        task = next((t for t in project.tasks if t.name == task_name), None)
        if task is None:
            known = ", ".join([NEXT_ITEM_TASK, *(t.name for t in project.tasks)])
            raise ReleaseActionError(f"project {project.name} has no task {task_name!r} (its tasks: {known})")
        release = task.release
    if release is None:
        where = "release:" if task is None else f"release: in its task {task_name}"
        raise ReleaseActionError(f"project {project.name} has no {where} section in project.yaml")
    return task, release


def released_tasks(project: Project) -> list[str]:
    """The tasks of the project that grey-release a new champion."""
    return ([NEXT_ITEM_TASK] if project.release else []) + [t.name for t in project.tasks if t.release]


def tracking_of(settings: Settings, project: Project, task: Task | None = None) -> ExperimentTracking:
    """The task's registry (None: next-item), as the project's Definitions build it (`resources.environment`)."""
    from algo_platform.resources.environment import legacy_names

    name = project.registered_model_name if task is None else project.task_registered_model_name(task)
    # The legacy names too: a read here may be the first use of the task's registry (it migrates once).
    return ExperimentTracking(
        tracking_uri=settings.tracking_uri,
        artifact_location=settings.artifact_location,
        experiment_name=name,
        registered_model_name=name,
        **legacy_names(project, task),
    )


def _value(metadata: dict, key: str, default=None):
    found = metadata.get(key)
    return default if found is None else getattr(found, "value", found)


def _reports(instance: dg.DagsterInstance, project: Project, task: Task | None) -> list:
    key = dg.AssetKey([project.name, report_names(task)[0]])
    return instance.fetch_materializations(key, limit=REPORT_DAYS).records


def report_days(instance: dg.DagsterInstance, project: Project, task: Task | None, release: Release) -> list[ReportDay]:
    """Every judged day of the task's releases, oldest first (a day's latest materialization)."""
    records = _reports(instance, project, task)
    latest: dict[str, ReportDay] = {}
    metric = release.primary_metric
    for record in sorted(records, key=lambda r: r.timestamp):
        metadata = record.event_log_entry.asset_materialization.metadata
        if _value(metadata, "decision", "none") == "none":
            continue
        day = record.partition_key or ""
        latest[day] = ReportDay(
            day=day,
            experiment=str(_value(metadata, "experiment", "")),
            stage_percent=float(_value(metadata, "stage_percent", 0.0)),
            decision=str(_value(metadata, "decision")),
            why=str(_value(metadata, "why", "")),
            status=str(_value(metadata, "status", "")),
            champion_mean=float(_value(metadata, f"champion_{metric}", float("nan"))),
            challenger_mean=float(_value(metadata, f"challenger_{metric}", float("nan"))),
            effect=float(_value(metadata, "effect", float("nan"))),
            low=float(_value(metadata, "effect_low", float("nan"))),
            high=float(_value(metadata, "effect_high", float("nan"))),
            champion_users=int(_value(metadata, "champion_users", 0)),
            challenger_users=int(_value(metadata, "challenger_users", 0)),
        )
    return [latest[day] for day in sorted(latest)]


def view(
    instance: dg.DagsterInstance, settings: Settings, project: Project, task_name: str = NEXT_ITEM_TASK
) -> ReleaseView:
    task, release = released_task(project, task_name)
    tracking = tracking_of(settings, project, task)
    state = state_of(tracking.release_state())
    champion = tracking.champion()
    plan = plan_of(release)
    days = [d for d in report_days(instance, project, task, release) if state and d.experiment == state.experiment]
    return ReleaseView(state, served_share(plan, state) if state else 0.0, champion.version if champion else None,
                       plan.stages, days)  # fmt: skip


def act(
    instance: dg.DagsterInstance,
    settings: Settings,
    project: Project,
    action: str,
    user: str,
    role: str,
    client: str,
    reason: str = "",
    task_name: str = NEXT_ITEM_TASK,
) -> Decision:
    """An admin's pause, resume, advance (promote at the last stage) or roll-back, applied and audited.
    It takes effect with the next lists built (`_decided_on`)."""
    task, release = released_task(project, task_name)
    tracking = tracking_of(settings, project, task)
    state = state_of(tracking.release_state())
    if state is None:
        raise ReleaseActionError(f"{project.name}'s {task_name} task has had no grey release yet")
    day = _decided_on(instance, project, task, state)
    decision = by_hand(plan_of(release), state, action, day, user, reason)
    apply(decision, tracking, day, instance, project.name, release, user=user, role=role, client=client, before=state)
    return decision


def _decided_on(instance: dg.DagsterInstance, project: Project, task: Task | None, state) -> str:
    """The day a decision by hand is taken on: its new state starts with the lists served the day after.
    That is the last day reported (judged or not: a paused release's days are reported, not judged),
    or, when the next lists are already built (recommendations of day D are served on D + 1), D + 1."""
    report, recommendations, _ = report_names(task)
    last = {}
    for name in (report, recommendations):
        records = instance.fetch_materializations(dg.AssetKey([project.name, name]), limit=REPORT_DAYS).records
        last[name] = max((r.partition_key for r in records if r.partition_key), default=None)
    candidates = [(dt.date.fromisoformat(state.stage_since) - dt.timedelta(days=1)).isoformat()]
    if last[report]:
        candidates.append(last[report])
    if last[recommendations]:
        candidates.append((dt.date.fromisoformat(last[recommendations]) + dt.timedelta(days=1)).isoformat())
    return max(candidates)
