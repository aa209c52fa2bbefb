"""Runs the trainer as a Kubernetes pod with dagster-k8s' PipesK8sClient.

The pod is built from typed config (GPUs, CPU/memory, node selector, tolerations, priority class,
service account, secrets, data volume, deadline). `render_pod` returns exactly the body that
`run_trainer` submits, so `algo-platform k8s render-training-pod` shows operators what will run.
"""

import functools
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from algo_platform.resources.gpu_usage import AdmissionWait
from algo_platform.resources.launcher import TRAINER_MODULE, TrainingLauncher
from algo_platform.training.idle import idle_rule_environment
from algo_platform.training.watchdog import HEARTBEAT_ANNOTATION, HEARTBEAT_FILE_ENV, HEARTBEAT_TIMEOUT_ENV

TRAINER_CONTAINER = "trainer"
RUN_LABEL = "algo-platform/run-id"
PODINFO_DIR = "/etc/algo-platform/podinfo"


class K8sTrainingLauncher(TrainingLauncher):
    """Launches `python -m algo_platform.training` (or `torchrun` for several GPUs) in a pod."""

    image: str = Field(default="algo-platform-trainer:latest", description="Trainer image (deploy/Dockerfile.trainer)")
    namespace: str = "algo-platform"
    gpus: int = Field(default=1, ge=0, description="nvidia.com/gpu limit; more than one runs torchrun with DDP")
    nodes: int = Field(default=1, ge=1, description="more than one: K8sMultiNodeTrainingLauncher (k8s_multinode)")
    rendezvous_endpoint: str | None = Field(
        default=None, description="host:port where the nodes meet; default: pod 0 of the Job, through its Service"
    )
    cpu_request: str = "4"
    cpu_limit: str = "8"
    memory_request: str = "16Gi"
    memory_limit: str = "32Gi"
    shared_memory: str = Field(default="8Gi", description="/dev/shm size; PyTorch workers share tensors through it")
    node_selector: dict[str, str] = {"nvidia.com/gpu.present": "true"}
    tolerations: list[dict[str, str]] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    priority_class: str | None = "algo-platform-training"
    labels: dict[str, str] = Field(default={}, description="Extra pod labels (the project: algo-platform/project)")
    service_account: str | None = "algo-platform-trainer"
    env_from_secrets: list[str] = Field(
        default=["algo-platform-storage"], description="Secrets whose keys become env vars (object-storage credentials)"
    )
    storage_root: str = Field(default="", description="ALGO_PLATFORM_STORAGE inside the pod (an object-storage URL)")
    data_volume_claim: str | None = Field(default=None, description="PVC mounted at /data, for storage on a volume")
    active_deadline_seconds: int = Field(default=6 * 3600, description="Kubernetes kills the pod after this long")
    delete_finished_pods: bool = True
    poll_interval_seconds: float = 5.0
    heartbeat_interval_seconds: float = Field(
        default=30.0, description="How often the launcher marks the trainer pod as still wanted"
    )
    heartbeat_timeout_seconds: int = Field(
        default=300,
        description="The trainer stops when the launcher's heartbeat is older than this (the run worker died); "
        "allow for the kubelet's delay in refreshing downward-API files (about a minute)",
    )
    idle_gpu_percent: float = Field(default=5.0, description="The trainer stops after a checkpoint when its GPUs ...")
    idle_minutes: float = Field(default=30.0, description="... stay under this utilisation this long")
    cluster_queue: str | None = Field(
        default=None, description="the team's Kueue ClusterQueue, whose use the run shows while it waits"
    )
    queue_status_seconds: float = Field(default=60.0, description="how often a waiting run logs the queue's state")
    run_worker_pod: str | None = Field(
        default=None,
        description="the run worker's own pod, which then owns the trainer pod (garbage-collected with it); "
        "default in a cluster: HOSTNAME, when that names a pod of the training namespace",
    )
    load_incluster_config: bool = True
    kubeconfig_file: str | None = None

    def owner_references(self, core_api: Any) -> list[dict[str, Any]]:
        """The run worker's pod as the trainer pod's owner: when Kubernetes deletes the worker (its Job's
        TTL, a killed run), it deletes the trainer too. None when the worker is not a pod of this namespace."""
        name = self.run_worker_pod or (os.environ.get("HOSTNAME") if self.load_incluster_config else None)
        if not name:
            return []
        try:
            worker = core_api.read_namespaced_pod(name, self.namespace)
        except Exception:  # another namespace, or not a pod at all: the reaper covers it
            return []
        return [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": worker.metadata.uid,
                 "blockOwnerDeletion": False, "controller": False}]  # fmt: skip

    def gpus_held(self, reported: Mapping[str, Any]) -> int:
        return self.gpus * self.nodes

    def load_config(self) -> None:
        import kubernetes

        if self.load_incluster_config:
            kubernetes.config.load_incluster_config()
        else:
            kubernetes.config.load_kube_config(config_file=self.kubeconfig_file)

    def command(self, args: Sequence[str]) -> list[str]:
        if self.gpus > 1:
            return ["torchrun", "--standalone", f"--nproc_per_node={self.gpus}", "-m", TRAINER_MODULE, *args]
        return ["python", "-m", TRAINER_MODULE, *args]

    def pod_spec(self) -> dict[str, Any]:
        gpu = {"nvidia.com/gpu": str(self.gpus)} if self.gpus else {}
        mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "podinfo", "mountPath": PODINFO_DIR}]
        volumes: list[dict[str, Any]] = [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": self.shared_memory}},
            # The pod's annotations as a file the kubelet keeps current: the launcher's heartbeat.
            {
                "name": "podinfo",
                "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]},
            },
        ]
        if self.data_volume_claim:
            mounts.append({"name": "data", "mountPath": "/data"})
            volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": self.data_volume_claim}})
        container = {
            "name": TRAINER_CONTAINER,
            "resources": {
                "requests": {"cpu": self.cpu_request, "memory": self.memory_request, **gpu},
                "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit, **gpu},
            },
            "envFrom": [{"secretRef": {"name": name}} for name in self.env_from_secrets],
            "env": [
                *([{"name": "ALGO_PLATFORM_STORAGE", "value": self.storage_root}] if self.storage_root else []),
                {"name": HEARTBEAT_FILE_ENV, "value": f"{PODINFO_DIR}/annotations"},
                {"name": HEARTBEAT_TIMEOUT_ENV, "value": str(self.heartbeat_timeout_seconds)},
                *(
                    {"name": name, "value": value}
                    for name, value in idle_rule_environment(self.idle_gpu_percent, self.idle_minutes).items()
                ),
            ],
            "volumeMounts": mounts,
        }
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": self.active_deadline_seconds,
            "containers": [container],
            "volumes": volumes,
        }
        optional = {
            "nodeSelector": self.node_selector,
            "tolerations": self.tolerations,
            "priorityClassName": self.priority_class,
            "serviceAccountName": self.service_account,
        }
        spec.update({key: value for key, value in optional.items() if value})
        return spec

    def pod_metadata(self, partition: str | None = None, run_id: str | None = None) -> dict[str, Any]:
        labels = {
            "app.kubernetes.io/name": "algo-platform-trainer",
            "app.kubernetes.io/part-of": "algo-platform",
            **self.labels,
        }
        if partition:
            labels["algo-platform/partition"] = partition
        if run_id:
            labels[RUN_LABEL] = run_id  # pod names carry a random suffix; this finds the run's pod
        return {"labels": labels, "annotations": {HEARTBEAT_ANNOTATION: f"{time.time():.0f}"}}

    def render_pod(
        self,
        args: Sequence[str],
        pod_name: str,
        env: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The pod manifest as a plain dict, built by the same function PipesK8sClient uses."""
        import kubernetes
        from dagster_k8s.pipes import build_pod_body

        body = build_pod_body(
            pod_name=pod_name,
            image=self.image,
            command=self.command(args),
            env_vars=dict(env or {}),
            base_pod_meta=dict(metadata or self.pod_metadata()),
            base_pod_spec=self.pod_spec(),
        )
        manifest = kubernetes.client.ApiClient().sanitize_for_serialization(body)
        manifest["metadata"]["namespace"] = self.namespace
        return {"apiVersion": "v1", "kind": "Pod", **manifest}

    def run_trainer(
        self, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, object] | None = None
    ) -> dg.PipesClientCompletedInvocation:
        return self.run_task(context, self.command(args), dict(extras or {}))

    def run_task(
        self,
        context: dg.AssetExecutionContext,
        command: Sequence[str],
        extras: Mapping[str, object],
        image: str | None = None,
        cwd: str | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        """`command` in a pod of `image` (the project's trainer image, or the platform's); `cwd` is the
        image's working directory, so it is not used here."""
        import kubernetes

        self.load_config()
        admission = AdmissionWait(self.cluster_queue, self.poll_interval_seconds, self.queue_status_seconds)
        client = admission_aware_client(
            admission,
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            poll_interval=self.poll_interval_seconds,
        )
        context.log.info(f"launching trainer pod in {self.namespace}: " + " ".join(command))
        outcome: dict[str, Any] = {}
        metadata = self.pod_metadata(context.partition_key if context.has_partition_key else None, context.run_id)
        owners = self.owner_references(kubernetes.client.CoreV1Api())

        def launch() -> None:
            try:
                outcome["invocation"] = client.run(
                    context=context,
                    image=image or self.image,
                    command=list(command),
                    namespace=self.namespace,
                    base_pod_meta={**metadata, "ownerReferences": owners} if owners else metadata,
                    base_pod_spec=self.pod_spec(),
                    extras=dict(extras),
                    delete_pod_on_completion=self.delete_finished_pods,
                )
            except BaseException as error:  # re-raised in the step's own thread below
                outcome["error"] = error

        # PipesK8sClient waits forever for a pod that was deleted from outside (dagster#22453: its
        # wait loop reads "no pod" as "not launched yet"). So it runs in a worker thread while this
        # thread watches the pod, and fails the step once a pod it has seen stays gone.
        worker = threading.Thread(target=launch, name="pipes-k8s-trainer", daemon=True)
        started = time.monotonic()
        worker.start()
        self._watch_for_deletion(worker, kubernetes.client.CoreV1Api(), context.run_id)
        if "error" in outcome:
            raise outcome["error"]
        self._record(context, started, admission.queued_seconds)
        return outcome["invocation"]

    def _beat(self, core_api: Any, pod_name: str) -> None:
        """Tell the trainer its launcher is alive: when this stops (run worker killed), it exits."""
        patch = {"metadata": {"annotations": {HEARTBEAT_ANNOTATION: f"{time.time():.0f}"}}}
        core_api.patch_namespaced_pod(pod_name, self.namespace, patch)

    def _watch_for_deletion(self, worker: threading.Thread, core_api: Any, run_id: str) -> None:
        # The client deletes the pod itself when it finishes, just before returning: allow for that.
        grace = max(5.0, 3 * self.poll_interval_seconds)
        pod_name, missing_since, last_beat = None, None, time.monotonic()
        while worker.is_alive():
            worker.join(self.poll_interval_seconds)
            if not worker.is_alive():
                return
            pods = core_api.list_namespaced_pod(self.namespace, label_selector=f"{RUN_LABEL}={run_id}").items
            # Filtered here too: not every API server (or emulator) applies label selectors.
            names = [p.metadata.name for p in pods if (p.metadata.labels or {}).get(RUN_LABEL) == run_id]
            if names:
                pod_name, missing_since = names[0], None
                if time.monotonic() - last_beat >= self.heartbeat_interval_seconds:
                    self._beat(core_api, pod_name)
                    last_beat = time.monotonic()
            elif pod_name is not None:
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > grace:
                    raise dg.Failure(
                        description=(
                            f"trainer pod {pod_name} in namespace {self.namespace} was deleted before it finished "
                            "(kubectl delete, eviction or node loss). The step fails; a retry resumes training "
                            "from the last checkpoint."
                        )
                    ) from None


@functools.cache
def _admission_aware_client_class() -> type:
    # dagster_k8s (and the kubernetes client) load only where a pod is launched: they cost every
    # code location most of a second.
    from dagster_k8s import PipesK8sClient

    class AdmissionAwarePipesK8sClient(PipesK8sClient):
        """PipesK8sClient that first waits, without a timeout, for Kueue to admit the pod: its own
        readiness timer (hours) would otherwise count the time spent in the team's queue."""

        def __init__(self, admission: AdmissionWait, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.admission = admission

        def consume_pod_logs(self, context, client, namespace, pod_name, **kwargs):  # type: ignore[override]
            import kubernetes

            self.admission.wait(context, client.core_api, kubernetes.client.CustomObjectsApi(), namespace, pod_name)
            return super().consume_pod_logs(context, client, namespace, pod_name, **kwargs)

    return AdmissionAwarePipesK8sClient


def admission_aware_client(admission: AdmissionWait, **kwargs: Any) -> Any:
    return _admission_aware_client_class()(admission, **kwargs)
