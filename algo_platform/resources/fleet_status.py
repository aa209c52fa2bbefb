"""The GPU fleet as it stands: each team queue's quota, use, borrowing and waiting runs, and each
project's GPU-hours and utilisation per day, for the `/platform/gpus` page.

Nothing new is stored for it. On a cluster, Kueue keeps the queues' use in each ClusterQueue's
status and the waiting pods carry Kueue's scheduling gate; without Kubernetes, a team queue is
the Dagster pool `gpu-<queue>`, whose claimed and pending slots the instance keeps. GPU-hours and
utilisation come from the training assets' materializations (`gpu_usage.usage_metadata`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from algo_platform.core.fleet import ADMISSION_GATE, KUEUE_API, QUEUE_LABEL, Fleet, local_pool, local_queue_name
from algo_platform.core.project import PROJECT_TAG
from algo_platform.resources.gpu_usage import gpu_usage_of
from algo_platform.resources.k8s_launcher import RUN_LABEL

USAGE_SCHEMA = {"project": pl.String, "day": pl.Date, "gpu_hours": pl.Float64, "utilisation": pl.Float64}


@dataclass
class WaitingRun:
    run_id: str
    project: str | None
    since: dt.datetime


@dataclass
class QueueState:
    name: str
    quota: int
    in_use: float
    borrowed: float = 0.0
    waiting: list[WaitingRun] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    unit: str = "GPUs"  # without Kubernetes a slot is a training step


def _projects_by_queue(projects: Mapping[str, str | None]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for project, queue in sorted(projects.items()):
        if queue is not None:
            grouped.setdefault(queue, []).append(project)
    return grouped


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # the instance stores UTC


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # the instance stores UTC


def local_queue_states(instance: dg.DagsterInstance, fleet: Fleet, projects: Mapping[str, str | None]) -> list:
    """Each team queue as its Dagster pool: in use = claimed slots, waiting = steps not yet given one."""
    grouped = _projects_by_queue(projects)
    states = []
    for name, team in sorted(fleet.queues.items()):
        info = instance.event_log_storage.get_concurrency_info(local_pool(name))
        pending = [step for step in info.pending_steps if step.assigned_timestamp is None]
        run_ids = [step.run_id for step in pending]
        runs = {run.run_id: run for run in instance.get_runs(dg.RunsFilter(run_ids=run_ids))} if run_ids else {}
        waiting = [
            WaitingRun(step.run_id, runs[step.run_id].tags.get(PROJECT_TAG) if step.run_id in runs else None,
                       _aware(step.enqueued_timestamp))
            for step in pending
        ]  # fmt: skip
        states.append(QueueState(name, team.gpus, info.active_slot_count, 0.0, waiting, grouped.get(name, []),
                                 "training steps"))  # fmt: skip
    return states


def cluster_queue_states(
    custom_api: Any, core_api: Any, namespace: str, fleet: Fleet, projects: Mapping[str, str | None]
) -> list[QueueState]:
    """Each team queue from its ClusterQueue's status; waiting = the training pods Kueue still gates."""
    grouped = _projects_by_queue(projects)
    project_of_local_queue = {local_queue_name(p): p for p in projects}
    gated: dict[str, list[WaitingRun]] = {}
    for pod in core_api.list_namespaced_pod(namespace, label_selector=QUEUE_LABEL).items:
        labels = pod.metadata.labels or {}
        if ADMISSION_GATE not in {gate.name for gate in pod.spec.scheduling_gates or []}:
            continue
        project = project_of_local_queue.get(labels.get(QUEUE_LABEL, ""))
        if project is None or projects.get(project) is None:
            continue
        gated.setdefault(projects[project], []).append(
            WaitingRun(labels.get(RUN_LABEL, pod.metadata.name), project, pod.metadata.creation_timestamp)
        )
    group, version = KUEUE_API.split("/")
    states = []
    for name, team in sorted(fleet.queues.items()):
        queue = custom_api.get_cluster_custom_object(group, version, "clusterqueues", name)
        in_use, borrowed = gpu_usage_of(queue, "total"), gpu_usage_of(queue, "borrowed")
        states.append(QueueState(name, team.gpus, in_use, borrowed, gated.get(name, []), grouped.get(name, [])))
    return states


def usage_by_day(
    instance: dg.DagsterInstance, model_assets: Mapping[str, Sequence[dg.AssetKey]], days: int, now: dt.datetime
) -> pl.DataFrame:
    """project × day: GPU-hours of its training runs and their mean utilisation (weighted by GPU-hours)."""
    after = (now - dt.timedelta(days=days)).timestamp()
    rows = []
    for project, keys in sorted(model_assets.items()):
        for key in keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_timestamp=after), limit=10_000
            ).records
            for record in records:
                metadata = record.asset_materialization.metadata if record.asset_materialization else {}
                hours = metadata.get("gpu_hours")
                if hours is None:
                    continue
                utilisation = metadata.get("gpu_utilization_mean_pct")
                rows.append({
                    "project": project,
                    "day": dt.datetime.fromtimestamp(record.timestamp, dt.UTC).date(),
                    "gpu_hours": float(hours.value),
                    "utilisation": float(utilisation.value) if utilisation is not None else None,
                })  # fmt: skip
    frame = pl.DataFrame(rows, schema=USAGE_SCHEMA)
    weighted = pl.when(pl.col("utilisation").is_not_null()).then(pl.col("gpu_hours"))
    return (
        frame.group_by("project", "day")
        .agg(
            pl.col("gpu_hours").sum(),
            ((pl.col("utilisation") * weighted).sum() / weighted.sum()).alias("utilisation"),
        )
        .sort("project", "day")
    )
