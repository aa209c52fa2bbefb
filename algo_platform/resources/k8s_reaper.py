"""What a run leaves on the cluster when its worker dies: trainer pods, multi-node Jobs and their
Services, and Kueue's workloads for them.

A run worker deletes its trainer pod when the trainer ends, and on a cluster the trainer pod is
owned by the run worker's pod (`K8sTrainingLauncher.owner_reference`), so Kubernetes' garbage
collector removes it with the worker. What neither covers (a worker killed between creating and
deleting, a worker in another namespace, a cluster whose GC lags) the reaper finds: every object
labelled with a run id (`algo-platform/run-id`) whose Dagster run has ended (or is unknown) is
deleted, and then every Kueue workload whose owners are all gone. A sensor per project runs it on
Kubernetes (`<project>_k8s_reaper`); `algo-platform k8s reap` runs it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from algo_platform.core.fleet import KUEUE_API
from algo_platform.core.project import PROJECT_LABEL
from algo_platform.resources.k8s_launcher import RUN_LABEL

ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class Apis:
    core: Any
    batch: Any
    custom: Any

    @classmethod
    def connect(cls, in_cluster: bool = True, kubeconfig_file: str | None = None) -> Apis:
        import kubernetes

        if in_cluster:
            kubernetes.config.load_incluster_config()
        else:
            kubernetes.config.load_kube_config(config_file=kubeconfig_file)
        client = kubernetes.client
        return cls(client.CoreV1Api(), client.BatchV1Api(), client.CustomObjectsApi())


def _ended_runs(instance: dg.DagsterInstance, run_ids: set[str]) -> set[str]:
    """The run ids whose runs ended, or that the instance does not know (deleted runs)."""
    if not run_ids:
        return set()
    runs = {run.run_id: run for run in instance.get_runs(dg.RunsFilter(run_ids=sorted(run_ids)))}
    return {run_id for run_id in run_ids if run_id not in runs or runs[run_id].status in ENDED}


def reap(
    instance: dg.DagsterInstance, apis: Apis, namespace: str, project: str | None = None, dry_run: bool = False
) -> list[str]:
    """Delete what ended runs left in `namespace` (of `project` only, when given); returns 'kind/name's."""
    selector = RUN_LABEL + (f",{PROJECT_LABEL}={project}" if project else "")
    listed = {
        "pod": apis.core.list_namespaced_pod(namespace, label_selector=selector).items,
        "job": apis.batch.list_namespaced_job(namespace, label_selector=selector).items,
        "service": apis.core.list_namespaced_service(namespace, label_selector=selector).items,
    }

    def labels(item: Any) -> dict[str, str]:
        return item.metadata.labels or {}

    # Filtered here as well: the selector is a request, not every API server (or emulator) applies it.
    listed = {
        kind: [
            i for i in items if RUN_LABEL in labels(i) and (project is None or labels(i).get(PROJECT_LABEL) == project)
        ]
        for kind, items in listed.items()
    }
    ended = _ended_runs(instance, {labels(i)[RUN_LABEL] for items in listed.values() for i in items})
    delete = {
        "pod": lambda name: apis.core.delete_namespaced_pod(name, namespace),
        "job": lambda name: apis.batch.delete_namespaced_job(name, namespace, propagation_policy="Background"),
        "service": lambda name: apis.core.delete_namespaced_service(name, namespace),
    }
    reaped = []
    for kind, items in listed.items():
        for item in items:
            if labels(item)[RUN_LABEL] in ended:
                if not dry_run:
                    delete[kind](item.metadata.name)
                reaped.append(f"{kind}/{item.metadata.name}")
    reaped += _orphaned_workloads(apis, namespace, set(reaped), dry_run)
    return reaped


def _orphaned_workloads(apis: Any, namespace: str, reaped: set[str], dry_run: bool) -> list[str]:
    """Kueue's workloads owned only by objects that are gone (just reaped, or no longer there)."""
    group, version = KUEUE_API.split("/")
    try:
        workloads = apis.custom.list_namespaced_custom_object(group, version, namespace, "workloads")["items"]
    except Exception as error:  # no Kueue on this cluster: nothing of its to clean
        if getattr(error, "status", None) == 404:
            return []
        raise
    present = {f"pod/{p.metadata.name}" for p in apis.core.list_namespaced_pod(namespace).items}
    present |= {f"job/{j.metadata.name}" for j in apis.batch.list_namespaced_job(namespace).items}
    orphaned = []
    for workload in workloads:
        owners = [f"{o['kind'].lower()}/{o['name']}" for o in workload["metadata"].get("ownerReferences", [])]
        if owners and all(owner in reaped or owner not in present for owner in owners):
            name = workload["metadata"]["name"]
            if not dry_run:
                apis.custom.delete_namespaced_custom_object(group, version, namespace, "workloads", name)
            orphaned.append(f"workload/{name}")
    return orphaned
