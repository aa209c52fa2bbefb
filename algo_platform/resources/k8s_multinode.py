"""Training over several nodes: an Indexed Job of `compute.nodes` pods and the headless Service that
names them, each pod running `torchrun --nnodes` with c10d rendezvous at pod 0.

Kubernetes' own objects (no JobSet or Kubeflow Trainer CRDs to install or validate against): the
Job's completion index is each pod's place, the Service gives pod 0 the stable name
`<job>-0.<job>` that every node meets at, and with a Kueue queue the Job is created suspended
and admitted whole, as one workload (Kueue's `waitForPodsReady` then holds further admissions
until all of its pods run). Rank 0 writes the checkpoints and the model, as with one node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster import PipesEnvContextInjector

from algo_platform.core.fleet import QUEUE_LABEL
from algo_platform.resources.gpu_usage import AdmissionWait
from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
from algo_platform.resources.launcher import TRAINER_MODULE

RENDEZVOUS_PORT = 29400
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
# From admission to pod 0 running: pulling a GPU image onto a fresh node takes minutes.
START_TIMEOUT_SECONDS = 1800
# Pod host names are `<job>-<index>` and must fit a DNS label.
MAX_JOB_NAME = 50


def torchrun_command(
    job: str, nodes: int, gpus_per_node: int, args: Sequence[str], endpoint: str | None = None
) -> list[str]:
    return [
        "torchrun", f"--nnodes={nodes}", f"--nproc_per_node={max(1, gpus_per_node)}",
        "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint or f'{job}-0.{job}:{RENDEZVOUS_PORT}'}",
        f"--rdzv_id={job}", "-m", TRAINER_MODULE, *args,
    ]  # fmt: skip


def render_training_job(
    launcher: K8sTrainingLauncher,
    args: Sequence[str],
    job: str,
    nodes: int,
    env: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[dict]:
    """[the headless Service, the Indexed Job] for `nodes` × `launcher.gpus` GPUs; `env` is Pipes'
    bootstrap (every pod gets it; the trainer reports from rank 0 only), `metadata` the run's labels."""
    if nodes < 2:
        raise ValueError(f"nodes={nodes}: one node is a pod (render_pod), not a Job")
    if len(job) > MAX_JOB_NAME:
        raise ValueError(f"{job}: a multi-node job name has at most {MAX_JOB_NAME} characters (pods add -<index>)")
    pod = launcher.render_pod(args, pod_name=job, env=env, metadata=metadata)
    spec: dict[str, Any] = pod["spec"]
    container = spec["containers"][0]
    container["command"] = torchrun_command(job, nodes, launcher.gpus, args, launcher.rendezvous_endpoint)
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


class K8sMultiNodeTrainingLauncher(K8sTrainingLauncher):
    """The trainer over `nodes` pods: an Indexed Job and its headless Service (`run_training_job`)."""

    def run_trainer(
        self, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, object] | None = None
    ) -> dg.PipesClientCompletedInvocation:
        started = time.monotonic()
        invocation, queued = run_training_job(self, context, args, dict(extras or {}))
        self._record(context, started, queued)
        return invocation


def job_name(run_id: str, retry_number: int) -> str:
    """One Job per attempt: a retry's Job never meets the previous attempt's."""
    return f"train-{run_id[:8]}-{retry_number}"


def run_training_job(
    launcher: K8sTrainingLauncher, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, Any]
) -> tuple[dg.PipesClientCompletedInvocation, float]:
    """Create the Service and the Indexed Job, wait for Kueue to admit the Job whole, read rank 0's
    Pipes messages from the log of the pod of completion index 0, and wait for every node to end.
    Returns the invocation and the seconds spent queued."""
    import kubernetes
    from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

    launcher.load_config()
    core, batch = kubernetes.client.CoreV1Api(), kubernetes.client.BatchV1Api()
    namespace, job = launcher.namespace, job_name(context.run_id, context.retry_number)
    admission = AdmissionWait(launcher.cluster_queue, launcher.poll_interval_seconds, launcher.queue_status_seconds)
    reader = PipesK8sPodLogsMessageReader()
    with dg.open_pipes_session(
        context=context, extras=dict(extras), context_injector=PipesEnvContextInjector(), message_reader=reader
    ) as session:
        metadata = launcher.pod_metadata(context.partition_key if context.has_partition_key else None, context.run_id)
        service, indexed = render_training_job(
            launcher, args, job, launcher.nodes, session.get_bootstrap_env_vars(), metadata
        )
        created = batch.create_namespaced_job(namespace, indexed)
        # The Service goes with its Job (garbage collection on a cluster; the reaper otherwise).
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": created.metadata.uid}
        service["metadata"]["ownerReferences"] = [{**owner, "blockOwnerDeletion": False}]
        core.create_namespaced_service(namespace, service)
        context.log.info(f"launched {launcher.nodes}-node training job {job} in {namespace}")
        beating = threading.Event()
        threading.Thread(target=_beat_job_pods, args=(launcher, core, job, beating), daemon=True).start()
        try:
            admission.wait_for_job(context, batch, kubernetes.client.CustomObjectsApi(), namespace, job)
            leader = _leader_pod(core, namespace, job, launcher.poll_interval_seconds)
            reader.consume_pod_logs(context=context, core_api=core, pod_name=leader, namespace=namespace)
            _wait_for_job(batch, namespace, job, launcher.nodes, launcher.poll_interval_seconds)
        finally:
            beating.set()
            if launcher.delete_finished_pods:
                _delete(lambda: batch.delete_namespaced_job(job, namespace, propagation_policy="Background"))
                _delete(lambda: core.delete_namespaced_service(job, namespace))
    return dg.PipesClientCompletedInvocation(session), admission.queued_seconds


def _beat_job_pods(launcher: K8sTrainingLauncher, core: Any, job: str, stop: threading.Event) -> None:
    """The launcher's heartbeat on every pod of the Job, as on a single trainer pod: when the run
    worker dies, the beats stop and every node's trainer exits (training/watchdog.py)."""
    while not stop.wait(launcher.heartbeat_interval_seconds):
        try:
            for pod in core.list_namespaced_pod(launcher.namespace, label_selector=f"job-name={job}").items:
                if (pod.metadata.labels or {}).get("job-name") == job:
                    launcher._beat(core, pod.metadata.name)
        except Exception:  # a missed beat is retried at the next interval; the timeout allows several
            continue


def _leader_pod(core: Any, namespace: str, job: str, poll_seconds: float) -> str:
    """The pod of completion index 0 (rank 0's node), once it runs or has ended; a pod that has not
    started within START_TIMEOUT_SECONDS of admission (a bad image, no node fits) fails the step."""
    selector = f"job-name={job},{COMPLETION_INDEX_LABEL}=0"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        pods = [
            pod for pod in core.list_namespaced_pod(namespace, label_selector=selector).items
            if (pod.metadata.labels or {}).get(COMPLETION_INDEX_LABEL) == "0"
        ]  # fmt: skip
        started = [pod for pod in pods if pod.status and pod.status.phase in ("Running", "Succeeded", "Failed")]
        if started:
            return started[0].metadata.name
        time.sleep(poll_seconds)
    raise dg.Failure(
        description=f"training job {job}: pod 0 did not start within {START_TIMEOUT_SECONDS // 60} minutes of "
        f"admission (kubectl describe pod -n {namespace} -l job-name={job}: image pull, node selector, quota)"
    )


def _wait_for_job(batch: Any, namespace: str, job: str, nodes: int, poll_seconds: float) -> None:
    while True:
        current = batch.read_namespaced_job(job, namespace)
        status = current.status
        if (status.succeeded or 0) >= nodes:
            return
        if current.spec.suspend:
            # Kueue took the GPUs back (a higher priority, or the lending team reclaiming its quota).
            raise dg.Failure(
                description=f"training job {job} was preempted by Kueue (suspended after admission); "
                "a retry queues again and resumes from the last checkpoint"
            )
        if status.failed:
            raise dg.Failure(
                description=f"training job {job}: {status.failed} of its {nodes} nodes failed (kubectl logs "
                f"-n {namespace} -l job-name={job}); a retry resumes from the last checkpoint"
            )
        time.sleep(poll_seconds)


def _delete(call: Any) -> None:
    import kubernetes

    try:
        call()
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
