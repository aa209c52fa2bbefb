"""Launches a Spark project's data stage (`python -m algo_platform.engines.spark.job`) through
Dagster Pipes: a local subprocess with Spark in local mode, or on Kubernetes the Spark driver as
a pod (dagster-k8s' PipesK8sClient) that asks Kubernetes for its executors (Spark's native
Kubernetes scheduler).

Why the native scheduler rather than the Spark operator: the driver is a plain Pod, so nothing
beyond the platform's own RBAC has to be installed in the cluster (no CRD, no operator to run and
upgrade), and its manifest is checked against the official Kubernetes schema like the trainer's.
"""

import sys
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from algo_platform.core.fleet import POD_GROUP_COUNT_ANNOTATION, POD_GROUP_LABEL, QUEUE_LABEL
from algo_platform.resources.k8s_launcher import RUN_LABEL
from algo_platform.resources.pipes_messages import WholeLineTempFileMessageReader

SPARK_JOB_MODULE = "algo_platform.engines.spark.job"
DRIVER_CONTAINER = "spark-driver"
EXECUTOR_CONTAINER = "spark-executor"
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079


class SparkLauncher(dg.ConfigurableResource):
    """Interface: run the Spark data stage with `extras` and return the Pipes invocation."""

    def run_stage(
        self, context: dg.AssetExecutionContext, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        raise NotImplementedError


class LocalSparkLauncher(SparkLauncher):
    """Spark in local mode in a subprocess of the run (laptops, CI, a single big machine)."""

    master: str = Field(default="local[*]", description="local[N]: N worker threads")
    driver_memory: str = Field(default="4g", description="the local JVM's heap (it holds driver and executors)")

    def run_stage(
        self, context: dg.AssetExecutionContext, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        command = [sys.executable, "-m", SPARK_JOB_MODULE]
        context.log.info(f"launching the Spark data stage ({self.master}): {' '.join(command)}")
        # PipesSubprocessClient adds these to the run's own environment.
        env = {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_SUBMIT_ARGS": f"--driver-memory {self.driver_memory} pyspark-shell",
        }
        extras = {**extras, "master": self.master}
        client = dg.PipesSubprocessClient(env=env, message_reader=WholeLineTempFileMessageReader())
        return client.run(context=context, command=command, extras=extras)


class K8sSparkLauncher(SparkLauncher):
    """The Spark driver as a pod in client mode; it starts `executors` executor pods itself."""

    image: str = Field(
        default="algo-platform-spark:latest", description="an image with Spark, Java 17 and algo_platform"
    )
    namespace: str = "algo-platform"
    service_account: str = Field(default="algo-platform-spark", description="may create and delete pods (executors)")
    executors: int = Field(default=4, ge=1)
    executor_cores: int = Field(default=4, ge=1)
    executor_memory: str = "16g"
    executor_memory_overhead: str = "4g"
    driver_cores: int = 2
    driver_memory: str = "8g"
    labels: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    env_from_secrets: list[str] = Field(
        default=["algo-platform-storage"], description="Secrets whose keys become env vars (object-storage credentials)"
    )
    load_incluster_config: bool = True

    def spark_conf(self) -> dict[str, str]:
        """Spark's settings for its native Kubernetes scheduler: executors sized from the project."""
        return {
            "spark.kubernetes.namespace": self.namespace,
            "spark.kubernetes.container.image": self.image,
            "spark.kubernetes.authenticate.serviceAccountName": self.service_account,
            # Client mode in a pod: executors connect back to the driver pod's address, which the
            # job reads from SPARK_DRIVER_POD_IP (spark_job.driver_conf).
            "spark.driver.port": str(DRIVER_PORT),
            "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
            "spark.executor.instances": str(self.executors),
            "spark.executor.cores": str(self.executor_cores),
            "spark.executor.memory": self.executor_memory,
            "spark.executor.memoryOverhead": self.executor_memory_overhead,
            # Two shuffle partitions per executor core, at least Spark's default parallelism.
            "spark.sql.shuffle.partitions": str(max(2 * self.executors * self.executor_cores, 8)),
            "spark.sql.adaptive.enabled": "true",
            **{f"spark.kubernetes.executor.label.{key}": value for key, value in self.labels.items()},
            **{f"spark.kubernetes.node.selector.{key}": value for key, value in self.node_selector.items()},
        }

    def pod_spec(self) -> dict[str, Any]:
        memory = self.driver_memory.replace("g", "Gi")
        container = {
            "name": DRIVER_CONTAINER,
            "resources": {
                "requests": {"cpu": str(self.driver_cores), "memory": memory},
                "limits": {"cpu": str(self.driver_cores), "memory": memory},
            },
            "env": [
                {"name": "SPARK_DRIVER_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "PYSPARK_SUBMIT_ARGS", "value": f"--driver-memory {self.driver_memory} pyspark-shell"},
            ],
            "envFrom": self.env_from(),
            "ports": [
                {"name": "driver", "containerPort": DRIVER_PORT},
                {"name": "blockmanager", "containerPort": BLOCK_MANAGER_PORT},
            ],
        }
        spec: dict[str, Any] = {
            "serviceAccountName": self.service_account,
            "restartPolicy": "Never",
            "containers": [container],
        }
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        return spec

    def env_from(self) -> list[dict[str, Any]]:
        """The storage Secrets as env vars, for the driver and every executor alike."""
        return [{"secretRef": {"name": name}} for name in self.env_from_secrets]

    def pod_group(self, run_id: str) -> dict[str, dict[str, str]]:
        """On a Kueue queue, the driver and its executors are one pod group, admitted whole: a
        half-admitted application (a driver waiting for executors that never come) cannot hold quota."""
        if QUEUE_LABEL not in self.labels:
            return {"labels": {}, "annotations": {}}
        return {
            "labels": {POD_GROUP_LABEL: f"spark-{run_id}"},
            "annotations": {POD_GROUP_COUNT_ANNOTATION: str(self.executors + 1)},
        }

    def pod_metadata(self, run_id: str | None = None) -> dict[str, Any]:
        group = self.pod_group(run_id or "preview")
        # The run's id lets the reaper (k8s_reaper) find a driver whose run worker died.
        run = {RUN_LABEL: run_id} if run_id else {}
        return {"labels": {**self.labels, **run, **group["labels"]}, "annotations": group["annotations"]}

    def executor_pod_template(self, run_id: str | None = None) -> dict[str, Any]:
        """What Spark adds to every executor pod it creates: the object-store credentials (executors
        read and write the tables on an object store themselves), the node selector, and the pod
        group they share with the driver."""
        spec: dict[str, Any] = {
            "containers": [
                {
                    "name": EXECUTOR_CONTAINER,
                    "envFrom": self.env_from(),
                }
            ]
        }
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        return {"apiVersion": "v1", "kind": "Pod", "metadata": self.pod_metadata(run_id), "spec": spec}

    def render_pod(self, run_id: str | None = None) -> dict[str, Any]:
        """The driver pod as submitted (without Pipes' own bootstrap variables)."""
        spec = self.pod_spec()
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "algo-platform-spark-",
                "namespace": self.namespace,
                **self.pod_metadata(run_id),
            },
            "spec": {
                **spec,
                "containers": [{**spec["containers"][0], "image": self.image, "command": self.command()}],
            },
        }

    def command(self) -> list[str]:
        return ["python", "-m", SPARK_JOB_MODULE]

    def run_stage(
        self, context: dg.AssetExecutionContext, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        from dagster_k8s import PipesK8sClient

        extras = {
            **extras,
            "master": "k8s://https://kubernetes.default.svc:443",
            "conf": self.spark_conf(),
            "executor_pod_template": self.executor_pod_template(context.run_id),
        }
        client = PipesK8sClient(load_incluster_config=self.load_incluster_config)
        return client.run(
            context=context,
            image=self.image,
            command=self.command(),
            namespace=self.namespace,
            base_pod_meta=self.pod_metadata(context.run_id),
            base_pod_spec=self.pod_spec(),
            extras=extras,
        )
