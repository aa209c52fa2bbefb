"""Training over several nodes: an Indexed Job of `compute.nodes` pods and the headless Service that
names them, each pod running `torchrun --nnodes` with c10d rendezvous at pod 0.

Kubernetes' own objects (no JobSet or Kubeflow Trainer CRDs to install or validate against): the
Job's completion index is each pod's place, the Service gives pod 0 the stable name
`<job>-0.<job>` that every node meets at, and with a Kueue queue the Job is created suspended
and admitted whole, as one workload (Kueue's `waitForPodsReady` then holds further admissions
until all of its pods run). Rank 0 writes the checkpoints and the model, as with one node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from algo_platform.core.fleet import QUEUE_LABEL
from algo_platform.pipeline.resources.k8s_launcher import K8sTrainingLauncher
from algo_platform.pipeline.resources.launcher import TRAINER_MODULE

RENDEZVOUS_PORT = 29400
# Pod host names are `<job>-<index>` and must fit a DNS label.
MAX_JOB_NAME = 50


def torchrun_command(job: str, nodes: int, gpus_per_node: int, args: Sequence[str]) -> list[str]:
    return [
        "torchrun", f"--nnodes={nodes}", f"--nproc_per_node={max(1, gpus_per_node)}",
        "--rdzv_backend=c10d", f"--rdzv_endpoint={job}-0.{job}:{RENDEZVOUS_PORT}", f"--rdzv_id={job}",
        "-m", TRAINER_MODULE, *args,
    ]  # fmt: skip


def render_training_job(launcher: K8sTrainingLauncher, args: Sequence[str], job: str, nodes: int) -> list[dict]:
    """[the headless Service, the Indexed Job] for `nodes` × `launcher.gpus` GPUs."""
    if nodes < 2:
        raise ValueError(f"nodes={nodes}: one node is a pod (render_pod), not a Job")
    if len(job) > MAX_JOB_NAME:
        raise ValueError(f"{job}: a multi-node job name has at most {MAX_JOB_NAME} characters (pods add -<index>)")
    pod = launcher.render_pod(args, pod_name=job)
    spec: dict[str, Any] = pod["spec"]
    container = spec["containers"][0]
    container["command"] = torchrun_command(job, nodes, launcher.gpus, args)
    container.pop("args", None)
    container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    spec["subdomain"] = job
    labels = dict(pod["metadata"]["labels"])
    namespace = launcher.namespace

    def manifest(api_version: str, kind: str, spec_: dict) -> dict:
        return {"apiVersion": api_version, "kind": kind,
                "metadata": {"name": job, "namespace": namespace, "labels": labels}, "spec": spec_}  # fmt: skip

    service = manifest("v1", "Service", {
        "clusterIP": "None",
        # The rendezvous happens before the pods are ready: their names must resolve at once.
        "publishNotReadyAddresses": True,
        "selector": {"job-name": job},
        "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT}],
    })  # fmt: skip
    template_metadata = {key: value for key, value in pod["metadata"].items() if key not in ("name", "namespace")}
    indexed_job = manifest("batch/v1", "Job", {
        "completionMode": "Indexed",
        "completions": nodes,
        "parallelism": nodes,
        # A failed node fails the attempt; Dagster's retry resumes from the checkpoint.
        "backoffLimit": 0,
        "suspend": QUEUE_LABEL in labels,  # Kueue unsuspends it once the whole job fits the team's quota
        "template": {"metadata": template_metadata, "spec": spec},
    })  # fmt: skip
    return [service, indexed_job]
