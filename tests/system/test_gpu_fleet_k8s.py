"""The GPU fleet on a cluster, through the real PipesK8sClient and the Kubernetes emulator playing
Kueue (tests/support/k8s_emulator.py): a queued pod's wait, a multi-node Job admitted whole and
preempted, and what a killed run worker leaves behind."""

import re
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.support.factories import PROJECT
from tests.support.k8s_emulator import KubernetesApiEmulator
from tests.support.k8s_training import land_training_inputs, materialize_model


@pytest.fixture
def emulator():
    with KubernetesApiEmulator(extra_path=str(Path(sys.executable).parent)) as running:
        yield running


def test_a_queued_pod_waits_for_kueue_and_the_run_shows_the_wait(settings, tmp_path, monkeypatch):
    """Kueue's webhook gates the pod; the run says what it waits for, the wait counts against none of
    the trainer's timeouts (the readiness timer is cut to 3 s here, the wait is longer). Admitted,
    the pod reports its metrics and model through Pipes, and the model's metadata (and MLflow) carry
    the wait and the GPU-hours the run held."""
    import dagster_k8s.pipes

    from algo_platform.core.fleet import QUEUE_LABEL
    from algo_platform.resources.gpu_usage import QUEUE_TAG

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
from tests.support.k8s_training import materialize_model

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

    from algo_platform.resources.k8s_launcher import RUN_LABEL
    from algo_platform.resources.k8s_reaper import Apis, reap

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
    from algo_platform.training.watchdog import HEARTBEAT_ANNOTATION

    land_training_inputs(settings, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    overrides = {"nodes": 2, "labels": {QUEUE_LABEL: "team-a"}, "rendezvous_endpoint": f"127.0.0.1:{port}",
                 "heartbeat_interval_seconds": 0.2}  # fmt: skip
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
        beats = emulator.annotations("training", HEARTBEAT_ANNOTATION)
        (namespace, job), *_ = [(ns, name) for ns, name in [("training", f"train-{outcome['result'].run_id[:8]}-0")]]
        assert not emulator.exists("batch/v1/jobs", namespace, job) and not emulator.exists(
            "v1/services", namespace, job
        )
    result = outcome["result"]
    assert result.success
    pods = [p for p in emulator.created if p["metadata"]["labels"].get("job-name") == job]
    assert len(pods) == 2 and all(p["spec"]["containers"][0]["command"][0] == "torchrun" for p in pods)
    # Every node got the launcher's heartbeat while it trained (else its trainer stops after 5 minutes).
    for pod in pods:
        stamps = (pod["metadata"]["annotations"][HEARTBEAT_ANNOTATION], beats[pod["metadata"]["name"]])
        assert float(stamps[1]) > float(stamps[0]), stamps
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
            "result", materialize_model(settings, emulator, tmp_path, epochs=60, launcher_overrides=overrides)
        ),
        daemon=True,
    )
    worker.start()
    deadline = time.monotonic() + 60
    while not any(p["metadata"]["labels"].get("job-name") for p in emulator.created) and time.monotonic() < deadline:
        time.sleep(0.05)
    job = next(p["metadata"]["labels"]["job-name"] for p in emulator.created if p["metadata"]["labels"].get("job-name"))
    # Once rank 0 logged its second epoch (its checkpoint written), of sixty.
    emulator.preempt_job_when_running("training", job, after_lines=4)
    worker.join(300)
    assert not worker.is_alive(), "the run hung after Kueue preempted its Job"
    result = outcome["result"]
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries and "was preempted by Kueue" in str(retries[0].event_specific_data.error)
    assert result.success
    jobs = {p["metadata"]["labels"]["job-name"] for p in emulator.created if p["metadata"]["labels"].get("job-name")}
    assert jobs == {job, job[:-1] + "1"}  # the retry's own Job
    # The retry's rank 0 picked up the checkpoint the preempted attempt wrote, not a fresh start.
    retry_lines = [
        line for (_, pod), run in emulator.runs.items() if pod.startswith(job[:-1] + "1-0-") for line in run.lines
    ]
    [(step, total)] = [
        tuple(map(int, re.search(r"at step (\d+) of (\d+)", line).groups()))
        for line in retry_lines
        if "resuming from" in line
    ]
    assert 0 < step < total, f"resumed at step {step} of {total}: the preemption did not land mid-training"
