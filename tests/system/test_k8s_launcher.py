"""The kubernetes launcher: manifests against the official schema, and the real PipesK8sClient
against a Kubernetes API emulator on 127.0.0.1 (see tests/support/k8s_emulator.py)."""

import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import kubernetes_validate
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from algo_platform.cli import main as cli
from algo_platform.pipeline.assets.model import build_model_asset
from algo_platform.pipeline.location import in_project
from algo_platform.pipeline.partitions import project_partitions
from algo_platform.pipeline.resources import build_resources
from algo_platform.pipeline.resources.k8s_launcher import K8sTrainingLauncher
from tests.support.factories import END_DAY, PROJECT, make_project, write_inputs
from tests.support.k8s_emulator import KubernetesApiEmulator

DAY = END_DAY.isoformat()
KUBERNETES_VERSION = "1.30"


def test_rendered_manifests_validate_against_the_kubernetes_schema(monkeypatch):
    """The shipped movies project's pod: its compute block (priority class, memory, labels) shows up."""
    monkeypatch.setenv("ALGO_PLATFORM_STORAGE", "s3://models-bucket/algo")
    for gpus in ("0", "1", "4"):
        result = CliRunner().invoke(
            cli, ["k8s", "render-training-pod", "--project", "movies", "--gpus", gpus, "--partition", DAY]
        )
        assert result.exit_code == 0, result.output
        pod = yaml.safe_load(result.output)
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        container = pod["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        assert limits.get("nvidia.com/gpu") == (None if gpus == "0" else gpus)
        assert container["command"][0] == ("torchrun" if gpus == "4" else "python")
        assert "--nproc_per_node=4" in container["command"] if gpus == "4" else True
        assert "s3://models-bucket/algo/projects/movies/training_sequences/2026-11-20.parquet" in container["command"]
        assert pod["spec"]["activeDeadlineSeconds"] == 21600 and pod["spec"]["restartPolicy"] == "Never"
        assert pod["spec"]["priorityClassName"] == "algo-platform-training-high"
        assert pod["metadata"]["labels"]["algo-platform/project"] == "movies"
        assert container["resources"]["limits"]["memory"] == "32Gi"


def test_every_option_of_the_pod_shows_up_in_the_manifest():
    launcher = K8sTrainingLauncher(
        image="registry.example/trainer:1.2",
        namespace="ml",
        gpus=2,
        node_selector={"pool": "h100"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        priority_class="batch-high",
        service_account="trainer",
        env_from_secrets=["s3-creds"],
        data_volume_claim="training-data",
        active_deadline_seconds=3600,
    )
    pod = launcher.render_pod(["--epochs", "1"], "trainer-test")
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "h100"} and spec["tolerations"][0]["key"] == "dedicated"
    assert spec["priorityClassName"] == "batch-high" and spec["serviceAccountName"] == "trainer"
    assert spec["containers"][0]["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "training-data"}} in spec["volumes"]
    assert pod["metadata"]["namespace"] == "ml" and spec["containers"][0]["image"] == "registry.example/trainer:1.2"


@pytest.fixture
def emulator():
    with KubernetesApiEmulator(extra_path=str(Path(sys.executable).parent)) as running:
        yield running


def emulated_launcher(settings, emulator, tmp_path, **overrides) -> K8sTrainingLauncher:
    """The launcher pointed at the emulator, with no secrets to mount (several nodes: the Job launcher)."""
    from algo_platform.pipeline.resources.k8s_multinode import K8sMultiNodeTrainingLauncher

    launcher_class = K8sMultiNodeTrainingLauncher if overrides.get("nodes", 1) > 1 else K8sTrainingLauncher
    return launcher_class(
        **{
            "image": "algo-platform-trainer:test",
            "namespace": "training",
            "gpus": 1,
            "env_from_secrets": [],
            "load_incluster_config": False,
            "kubeconfig_file": emulator.kubeconfig(tmp_path / "kubeconfig"),
            "poll_interval_seconds": 0.05,
            "storage_root": settings.storage_root,
            **overrides,
        }
    )


def materialize_model(
    settings, emulator, tmp_path, epochs=2, launcher_overrides=None, instance=None
) -> dg.ExecuteInProcessResult:
    launcher = emulated_launcher(settings, emulator, tmp_path, **(launcher_overrides or {}))
    project = make_project()
    partitions = project_partitions(project.partitions_start, project.data.partition)
    resources = {**build_resources(settings, project), "training_launcher": launcher}
    # The inputs were written to storage beforehand: external assets that the IO manager loads.
    inputs = [
        dg.AssetSpec([PROJECT, name], partitions_def=partitions) for name in ("training_sequences", "item_vocabulary")
    ]
    model = in_project([build_model_asset(partitions, project.model.hyperparameters(), "gpu")], project)[0]
    return dg.materialize(
        [model, *inputs],
        partition_key=DAY,
        resources=resources,
        raise_on_error=False,
        run_config={"ops": {"sequence_model": {"config": {"epochs": epochs, "device": "cpu"}}}},
        instance=instance,
    )


def land_training_inputs(settings, tmp_path) -> None:
    sequences, vocabulary = write_inputs(tmp_path)
    for name, source in (("training_sequences", sequences), ("item_vocabulary", vocabulary)):
        target = Path(settings.layout.project(PROJECT).root) / name / f"{DAY}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(source).read_bytes())


def test_a_failing_trainer_fails_the_step_with_the_trainers_error(settings, emulator, tmp_path):
    for name in ("training_sequences", "item_vocabulary"):
        target = Path(settings.layout.project(PROJECT).root) / name / f"{DAY}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id": [1], "history": [[3]], "holdout": [[4]]}).to_parquet(
        Path(settings.layout.project(PROJECT).root) / "training_sequences" / f"{DAY}.parquet"
    )
    pd.DataFrame({"item_index": [1, 2, 3, 4], "item_id": [1, 2, 3, 4]}).to_parquet(
        Path(settings.layout.project(PROJECT).root) / "item_vocabulary" / f"{DAY}.parquet"
    )
    result = materialize_model(settings, emulator, tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    text = failure.message + "".join(str(c.message) for c in [failure.cause] if c)
    assert "nothing to train on" in text


def test_a_pod_deleted_from_outside_fails_the_attempt_and_the_retry_finishes(settings, emulator, tmp_path):
    land_training_inputs(settings, tmp_path)
    emulator.delete_pod_when_running("training", after_lines=1)  # only the first pod
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.setdefault("result", materialize_model(settings, emulator, tmp_path, epochs=4)),
        daemon=True,
    )
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the run hung after its pod was deleted"
    result = outcome["result"]
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 1 and "was deleted before it finished" in str(retries[0].event_specific_data.error)
    assert result.success and len(emulator.created) == 2  # the RetryPolicy launched a second pod


def test_the_trainer_pod_sees_the_launchers_heartbeat_and_the_launcher_renews_it():
    from algo_platform.training.watchdog import HEARTBEAT_ANNOTATION, HEARTBEAT_FILE_ENV

    launcher = K8sTrainingLauncher(heartbeat_timeout_seconds=120)
    pod = launcher.render_pod(["--epochs", "1"], pod_name="preview")
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    podinfo = next(v for v in spec["volumes"] if v["name"] == "podinfo")
    assert podinfo["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.annotations"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[HEARTBEAT_FILE_ENV].startswith(
        next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "podinfo")
    )
    assert float(pod["metadata"]["annotations"][HEARTBEAT_ANNOTATION]) > 0

    patches = []

    class CoreApi:
        def patch_namespaced_pod(self, name, namespace, body):
            patches.append((name, namespace, body))

    launcher._beat(CoreApi(), "trainer-abc")
    ((name, namespace, body),) = patches
    assert (name, namespace) == ("trainer-abc", "algo-platform")
    beat = body["metadata"]["annotations"][HEARTBEAT_ANNOTATION]
    assert abs(float(beat) - time.time()) < 5


def test_the_trainer_reads_the_heartbeat_from_the_file_the_kubelet_writes(tmp_path):
    from algo_platform.training.watchdog import read_heartbeat

    # The downward API writes one key="value" line per annotation, values quoted as Go does.
    (tmp_path / "annotations").write_text('algo-platform/launcher-heartbeat="1795176000"\nother="a\\"b"\n')
    assert read_heartbeat(str(tmp_path / "annotations")) == 1795176000


def test_the_spark_driver_pod_validates_and_sizes_executors_from_the_project(settings):
    """A Spark project on Kubernetes: the driver pod against the official schema, and its Spark
    settings (executors, cores, memory) from the project's compute.spark block."""
    from algo_platform.pipeline.resources.spark_launcher import K8sSparkLauncher

    project = make_project(
        data={"engine": "spark"},
        compute={"spark": {"executors": 12, "executor_cores": 8, "executor_memory": "48g", "driver_memory": "16g"}},
    )
    kubernetes = dataclasses.replace(settings, env="kubernetes", spark_image="registry.example/spark:1.0")
    launcher = build_resources(kubernetes, project)["spark_launcher"]
    assert isinstance(launcher, K8sSparkLauncher)
    pod = launcher.render_pod()
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example/spark:1.0"
    assert container["command"] == ["python", "-m", "algo_platform.engines.spark.job"]
    assert container["resources"]["limits"]["memory"] == "16Gi"
    assert pod["spec"]["serviceAccountName"] == "algo-platform-spark"
    assert pod["metadata"]["labels"]["algo-platform/project"] == PROJECT
    conf = launcher.spark_conf()
    assert conf["spark.executor.instances"] == "12" and conf["spark.executor.cores"] == "8"
    assert conf["spark.executor.memory"] == "48g" and conf["spark.sql.shuffle.partitions"] == "192"
    assert conf["spark.kubernetes.container.image"] == "registry.example/spark:1.0"
    assert conf["spark.kubernetes.executor.label.algo-platform/project"] == PROJECT

    # Executors read and write the tables on the object store themselves: they get its credentials
    # from the same Secrets as the driver, through the pod template the driver hands to Spark.
    template = launcher.executor_pod_template()
    kubernetes_validate.validate(template, KUBERNETES_VERSION, strict=True)
    executor = template["spec"]["containers"][0]
    assert executor["envFrom"] == container["envFrom"] == [{"secretRef": {"name": "algo-platform-storage"}}]
    from algo_platform.engines.spark.job import driver_conf

    driver = driver_conf({"conf": conf, "executor_pod_template": template})
    assert driver["spark.kubernetes.executor.podTemplateContainerName"] == executor["name"]
    template_file = Path(driver["spark.kubernetes.executor.podTemplateFile"])
    assert json.loads(template_file.read_text()) == template
    template_file.unlink()


def test_a_spark_project_rejects_many_days_per_run():
    with pytest.raises(Exception, match="engine spark runs one day per run"):
        make_project(data={"engine": "spark", "days_per_run": 30})


def test_a_command_task_runs_in_its_own_image_as_a_pod_and_reports_through_pipes(settings, emulator, tmp_path):
    """The feed project's scikit-learn program, launched as a pod of the task's image."""
    import datetime as dt

    import numpy as np
    import polars as pl

    from algo_platform.ingest.datagen import build_world, generate_day
    from algo_platform.pipeline.assets.tasks import build_task_assets
    from algo_platform.tasks.engagement.examples import build_examples

    script = Path(__file__).parents[2] / "projects" / "feed" / "sklearn_ranker.py"
    task = {"name": "sk", "type": "engagement", "command": ["python", str(script)], "image": "team/sk-ranker:3"}
    project = make_project(tasks=[task])
    world, rng = build_world(300, 200, 0), np.random.default_rng(0)
    days = [END_DAY - dt.timedelta(days=offset) for offset in range(4, -1, -1)]
    events = pl.concat([pl.from_arrow(generate_day(world, day, 2_000, rng)) for day in days])
    target = Path(settings.layout.project(PROJECT).root) / "sk_examples" / f"{DAY}.parquet"
    target.parent.mkdir(parents=True)
    build_examples(events, END_DAY, ["like", "share", "comment", "follow"]).to_pandas().to_parquet(target)

    launcher = emulated_launcher(settings, emulator, tmp_path, gpus=0)
    partitions = project_partitions(project.partitions_start, project.data.partition)
    assets = in_project(build_task_assets(project, project.tasks[0], partitions), project)
    model = next(a for a in assets if dg.AssetKey([PROJECT, "sk_model"]) in a.keys)
    result = dg.materialize(
        [model, dg.AssetSpec([PROJECT, "sk_examples"], partitions_def=partitions)],
        partition_key=DAY,
        resources={**build_resources(settings, project), "training_launcher": launcher},
    )
    assert result.success
    container = emulator.created[0]["spec"]["containers"][0]
    assert container["image"] == "team/sk-ranker:3" and container["command"] == ["python", str(script)]
    metadata = result.asset_materializations_for_node("sk_model")[0].metadata
    assert metadata["model_format"].value == "mlflow" and 0.4 < metadata["validation_auc"].value < 1.0
    assert (Path(metadata["model_uri"].value) / "MLmodel").exists()


def test_a_queued_pod_waits_for_kueue_and_the_run_shows_the_wait(settings, tmp_path, monkeypatch):
    """Kueue's webhook gates the pod; the run says what it waits for, the wait counts against none of
    the trainer's timeouts (the readiness timer is cut to 3 s here, the wait is longer). Admitted,
    the pod reports its metrics and model through Pipes, and the model's metadata (and MLflow) carry
    the wait and the GPU-hours the run held."""
    import dagster_k8s.pipes

    from algo_platform.core.fleet import QUEUE_LABEL
    from algo_platform.pipeline.resources.gpu_usage import QUEUE_TAG

    monkeypatch.setattr(dagster_k8s.pipes, "WAIT_TIMEOUT_FOR_READY", 3.0)
    land_training_inputs(settings, tmp_path)
    queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "recsys"},
        "spec": {"resourceGroups": [{"coveredResources": ["nvidia.com/gpu"], "flavors": [
            {"name": "h100", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 8}]}]}]},
        "status": {"pendingWorkloads": 2,
                   "flavorsUsage": [{"name": "h100", "resources": [{"name": "nvidia.com/gpu", "total": "6"}]}]},
    }  # fmt: skip
    with KubernetesApiEmulator(extra_path=str(Path(sys.executable).parent), kueue=True) as emulator:
        emulator.put_cluster_queue(queue)
        overrides = {"labels": {QUEUE_LABEL: "team-a"}, "cluster_queue": "recsys", "queue_status_seconds": 1.0}
        outcome: dict = {}
        instance = dg.DagsterInstance.ephemeral()
        worker = threading.Thread(
            target=lambda: outcome.setdefault(
                "result",
                materialize_model(settings, emulator, tmp_path, launcher_overrides=overrides, instance=instance),
            ),
            daemon=True,
        )
        worker.start()
        deadline = time.monotonic() + 60
        while not emulator.gated and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.gated, "the training pod was never created"
        time.sleep(5)
        assert not emulator.runs, "a gated pod ran before Kueue admitted it"
        assert emulator.admit() == 1
        worker.join(120)
    result = outcome["result"]
    assert result.success
    # The pod as submitted, and what its trainer reported through Pipes.
    container = emulator.created[0]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["command"][:3] == ["python", "-m", "algo_platform.training"]
    assert any(e["name"] == "DAGSTER_PIPES_CONTEXT" for e in container["env"])
    reported = result.asset_materializations_for_node("sequence_model")[0].metadata
    assert len(reported["loss_per_epoch"].value) == 2 and 0.0 <= reported["holdout_hr@10"].value <= 1.0
    assert Path(reported["model_uri"].value).exists()
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    waiting = [m for m in messages if "queued for GPUs" in m]
    assert waiting and waiting[0].startswith("queued for GPUs (recsys: 6/8 in use, 2 waiting)"), messages
    assert instance.get_run_by_id(result.run_id).tags[QUEUE_TAG].startswith("admitted after")
    metadata = result.asset_materializations_for_node("sequence_model")[0].metadata
    assert metadata["gpu_queue_wait_seconds"].value >= 5
    held = metadata["gpu_hours"].value * 3600
    assert metadata["gpus"].value == 1 and 0 < held < 120
    from mlflow import MlflowClient

    tracked = MlflowClient(tracking_uri=settings.tracking_uri).get_run(metadata["mlflow_run_id"].value).data.metrics
    assert tracked["gpu_hours"] == pytest.approx(metadata["gpu_hours"].value)
    assert tracked["gpu_queue_wait_seconds"] >= 5


# A run worker in its own process: it trains through the emulator and is killed halfway.
RUN_WORKER = """
import sys
import dagster as dg
from algo_platform.core.settings import Settings
from tests.system.test_k8s_launcher import materialize_model

storage, kubeconfig, tmp = sys.argv[1:4]
emulator = type("Emulator", (), {"kubeconfig": lambda self, path: kubeconfig})()
overrides = {"run_worker_pod": "run-worker", "heartbeat_timeout_seconds": 600}
with dg.DagsterInstance.get() as instance:
    materialize_model(Settings(env="local", storage_root=storage), emulator, __import__("pathlib").Path(tmp),
                      epochs=200, launcher_overrides=overrides, instance=instance)
"""


def test_what_a_killed_run_worker_leaves_is_owned_by_it_and_reaped_once_its_run_ended(settings, emulator, tmp_path):
    """Kubernetes would garbage-collect the trainer pod with its owner, the run worker's pod; the
    emulator has no garbage collector, so the reaper's part shows: nothing of a running run is
    touched, and once the run has failed its pod, Job, Service and Kueue workload all go."""
    import os
    import signal
    import subprocess

    from algo_platform.pipeline.resources.k8s_launcher import RUN_LABEL
    from algo_platform.pipeline.resources.k8s_reaper import Apis, reap

    land_training_inputs(settings, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("{}\n")
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig")
    worker_pod = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "run-worker", "namespace": "training", "uid": "5f0c-run-worker"}}  # fmt: skip
    emulator.put("v1/pods", worker_pod)
    worker = subprocess.Popen(
        [sys.executable, "-c", RUN_WORKER, settings.storage_root, kubeconfig, str(tmp_path)],
        env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=Path(__file__).parents[2], start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(len(run.lines) >= 3 for run in emulator.runs.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert emulator.runs, "the trainer pod never ran"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    ((namespace, pod_name),) = emulator.runs
    trainer = next(p for p in emulator.created if p["metadata"]["name"] == pod_name)
    owner = trainer["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Pod", "run-worker", "5f0c-run-worker")
    run_id = trainer["metadata"]["labels"][RUN_LABEL]
    labels = {RUN_LABEL: run_id, "algo-platform/project": PROJECT}
    for resource, kind in (("batch/v1/jobs", "Job"), ("v1/services", "Service")):
        metadata = {"name": f"left-{kind.lower()}", "namespace": namespace, "labels": labels}
        emulator.put(resource, {"apiVersion": resource.rsplit("/", 1)[0], "kind": kind, "metadata": metadata})
    owned_by_trainer = [{"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": "u"}]
    metadata = {"name": f"pod-{pod_name}", "namespace": namespace, "ownerReferences": owned_by_trainer}
    workload = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload", "metadata": metadata}
    emulator.put("kueue.x-k8s.io/v1beta2/workloads", workload)

    apis = Apis.connect(in_cluster=False, kubeconfig_file=kubeconfig)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED and emulator.exists("v1/pods", namespace, pod_name)
        assert reap(instance, apis, namespace) == []  # the run may still be alive: nothing is touched
        instance.report_run_failed(run)  # what run monitoring does once the worker is gone
        assert reap(instance, apis, namespace, dry_run=True) and emulator.exists("v1/pods", namespace, pod_name)
        reaped = reap(instance, apis, namespace)
    assert sorted(reaped) == sorted([f"pod/{pod_name}", "job/left-job", "service/left-service",
                                     f"workload/pod-{pod_name}"])  # fmt: skip
    assert not emulator.exists("v1/pods", namespace, pod_name) and not emulator.exists(
        "batch/v1/jobs", namespace, "left-job"
    )
    assert not emulator.exists("kueue.x-k8s.io/v1beta2/workloads", namespace, f"pod-{pod_name}")
    assert emulator.exists("v1/pods", namespace, "run-worker")  # not the platform's: never touched


def test_a_two_node_training_job_is_admitted_whole_and_rank_0_reports_through_pipes(settings, tmp_path):
    """compute.nodes: 2 on a queue: an Indexed Job, created suspended, waits for Kueue; once admitted
    its two pods rendezvous (torchrun, c10d, gloo) and pod 0 (rank 0) reports the model through Pipes."""
    import socket

    from algo_platform.core.fleet import QUEUE_LABEL

    land_training_inputs(settings, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    overrides = {"nodes": 2, "labels": {QUEUE_LABEL: "team-a"}, "rendezvous_endpoint": f"127.0.0.1:{port}"}
    with KubernetesApiEmulator(extra_path=str(Path(sys.executable).parent), kueue=True) as emulator:
        outcome: dict = {}
        worker = threading.Thread(
            target=lambda: outcome.setdefault(
                "result", materialize_model(settings, emulator, tmp_path, launcher_overrides=overrides)
            ),
            daemon=True,
        )
        worker.start()
        deadline = time.monotonic() + 60
        while not emulator.suspended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.suspended and not emulator.runs, "the Job ran before Kueue admitted it"
        time.sleep(2)
        assert emulator.admit() == 1
        worker.join(300)
        assert not worker.is_alive(), "the multi-node run did not finish"
        (namespace, job), *_ = [(ns, name) for ns, name in [("training", f"train-{outcome['result'].run_id[:8]}-0")]]
        assert not emulator.exists("batch/v1/jobs", namespace, job) and not emulator.exists(
            "v1/services", namespace, job
        )
    result = outcome["result"]
    assert result.success
    pods = [p for p in emulator.created if p["metadata"]["labels"].get("job-name") == job]
    assert len(pods) == 2 and all(p["spec"]["containers"][0]["command"][0] == "torchrun" for p in pods)
    metadata = result.asset_materializations_for_node("sequence_model")[0].metadata
    assert metadata["processes"].value == 2 and metadata["gpus"].value == 2
    assert metadata["gpu_queue_wait_seconds"].value >= 2 and Path(metadata["model_uri"].value).exists()


def test_a_multi_node_job_preempted_by_kueue_fails_its_attempt_and_the_retry_resumes(settings, emulator, tmp_path):
    import socket

    land_training_inputs(settings, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome: dict = {}
    overrides = {"nodes": 2, "rendezvous_endpoint": f"127.0.0.1:{port}"}
    worker = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", materialize_model(settings, emulator, tmp_path, epochs=6, launcher_overrides=overrides)
        ),
        daemon=True,
    )
    worker.start()
    deadline = time.monotonic() + 60
    while not any(p["metadata"]["labels"].get("job-name") for p in emulator.created) and time.monotonic() < deadline:
        time.sleep(0.05)
    job = next(p["metadata"]["labels"]["job-name"] for p in emulator.created if p["metadata"]["labels"].get("job-name"))
    emulator.preempt_job_when_running("training", job, after_lines=3)
    worker.join(300)
    assert not worker.is_alive(), "the run hung after Kueue preempted its Job"
    result = outcome["result"]
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries and "was preempted by Kueue" in str(retries[0].event_specific_data.error)
    assert result.success
    jobs = {p["metadata"]["labels"]["job-name"] for p in emulator.created if p["metadata"]["labels"].get("job-name")}
    assert jobs == {job, job[:-1] + "1"}  # the retry's own Job
