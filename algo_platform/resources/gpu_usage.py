"""A training step's GPUs, seen from the run: the wait for Kueue's admission, and what the GPUs
were used for once held.

While a training pod waits behind its team's quota, Kueue's webhook holds it with a scheduling
gate. `AdmissionWait` polls the pod, shows the wait on the run (a log line and the run tag
`algo-platform/gpu-queue`, "queued for GPUs (recsys: 6/8 in use, 2 waiting)", read from the
team's ClusterQueue), and returns once the gate is gone. Waiting happens before dagster-k8s'
own readiness timer starts, and a gated pod has no start time, so its activeDeadlineSeconds has
not begun either: the wait never counts against the trainer's timeouts.

`usage_metadata` turns a finished step into GPU-hours and the platform's efficiency figure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from algo_platform.core.fleet import ADMISSION_GATE, KUEUE_API

QUEUE_TAG = "algo-platform/gpu-queue"
GPU = "nvidia.com/gpu"


def quantity(value: Any) -> float:
    """A Kubernetes quantity of whole devices ("8", 8, "8000m") as a number."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def gpu_usage_of(queue: dict[str, Any], field: str) -> float:
    """GPUs in a ClusterQueue's status, summed over flavors: `total` in use, or `borrowed`."""
    return sum(
        quantity(resource.get(field, 0))
        for flavor in queue.get("status", {}).get("flavorsUsage", [])
        for resource in flavor.get("resources", [])
        if resource["name"] == GPU
    )


def describe_cluster_queue(queue: dict[str, Any]) -> str:
    """'recsys: 6/8 in use, 2 waiting' from a ClusterQueue object (borrowed GPUs show as in use above the quota)."""
    quota = sum(
        quantity(resource["nominalQuota"])
        for group in queue.get("spec", {}).get("resourceGroups", [])
        for flavor in group.get("flavors", [])
        for resource in flavor.get("resources", [])
        if resource["name"] == GPU
    )
    waiting = queue.get("status", {}).get("pendingWorkloads", 0)
    in_use = gpu_usage_of(queue, "total")
    return f"{queue['metadata']['name']}: {in_use:g}/{quota:g} in use" + (f", {waiting} waiting" if waiting else "")


@dataclass
class AdmissionWait:
    """Waits for Kueue to admit one pod; `queued_seconds` is how long it waited."""

    cluster_queue: str | None
    poll_seconds: float
    status_every_seconds: float = 60.0
    queued_seconds: float = 0.0

    def queue_status(self, custom_api: Any) -> str:
        if self.cluster_queue is None:
            return "no queue"
        try:
            group, version = KUEUE_API.split("/")
            queue = custom_api.get_cluster_custom_object(group, version, "clusterqueues", self.cluster_queue)
            return describe_cluster_queue(queue)
        except Exception:  # the status is a courtesy: without it the run still waits and says for what
            return self.cluster_queue

    def wait(self, context: dg.OpExecutionContext, core_api: Any, custom_api: Any, namespace: str, pod: str) -> None:
        """Until Kueue's webhook gate is gone from the pod."""

        def gated() -> bool:
            try:
                spec = core_api.read_namespaced_pod(pod, namespace).spec
            except Exception as error:
                if getattr(error, "status", None) == 404:
                    raise dg.Failure(
                        description=f"training pod {pod} in {namespace} was deleted while it waited in the GPU queue; "
                        "a retry queues again"
                    ) from None
                raise
            return ADMISSION_GATE in {gate.name for gate in spec.scheduling_gates or []}

        self.wait_until_admitted(context, custom_api, gated, f"the training pod {pod}")

    def wait_for_job(self, context: dg.OpExecutionContext, batch_api: Any, custom_api: Any, namespace: str, job: str):
        """Until Kueue unsuspends the Job (all of its pods fit the quota at once)."""
        self.wait_until_admitted(
            context, custom_api, lambda: bool(batch_api.read_namespaced_job(job, namespace).spec.suspend), f"job {job}"
        )

    def wait_until_admitted(
        self, context: dg.OpExecutionContext, custom_api: Any, gated: Callable[[], bool], what: str
    ) -> None:
        started, shown, shown_at = time.monotonic(), None, -math.inf
        while gated():
            status = f"queued for GPUs ({self.queue_status(custom_api)})"
            if status != shown or time.monotonic() - shown_at >= self.status_every_seconds:
                waited = time.monotonic() - started
                context.log.info(f"{status}, waiting {waited:.0f} s so far; the trainer's timeouts have not started")
                context.instance.add_run_tags(context.run_id, {QUEUE_TAG: status})
                shown, shown_at = status, time.monotonic()
            time.sleep(self.poll_seconds)
        self.queued_seconds = time.monotonic() - started
        if shown is not None:
            admitted = f"admitted after {self.queued_seconds:.0f} s in the queue"
            context.log.info(f"Kueue admitted {what}: {admitted}")
            context.instance.add_run_tags(context.run_id, {QUEUE_TAG: admitted})


def usage_metadata(reported: dict[str, Any], gpus: int, held_seconds: float, queued_seconds: float) -> dict[str, float]:
    """GPU-hours, mean utilisation and efficiency of one training step.

    `held_seconds` is from admission to the trainer's end (the GPUs were the run's); the trainer
    reports `train_seconds` (the steps that produced the model) and its NVML mean utilisation.
    Efficiency = useful GPU time / held GPU time × mean utilisation: 1.0 is a trainer that kept
    every GPU it held busy, from the pod's start to its end; startup, data loading and idle GPUs
    lower it.
    """
    usage = {"gpus": float(gpus), "gpu_hours": gpus * held_seconds / 3600, "gpu_queue_wait_seconds": queued_seconds}
    utilisation = reported.get("gpu_utilization_mean_pct")
    train_seconds = reported.get("train_seconds")
    if gpus and utilisation is not None and train_seconds is not None and held_seconds > 0:
        useful = min(float(train_seconds) / held_seconds, 1.0)
        usage["gpu_efficiency"] = useful * float(utilisation) / 100
    return usage
