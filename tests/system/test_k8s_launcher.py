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
from algo_platform.definitions import in_project
from algo_platform.resources.environment import build_resources
from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
from algo_platform.resources.partitions import project_partitions
from tests.support.factories import END_DAY, PROJECT, make_project
from tests.support.k8s_emulator import KubernetesApiEmulator
from tests.support.k8s_training import DAY, emulated_launcher, land_training_inputs, materialize_model

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
    # Two GPUs: the limit, and torchrun with a process per GPU; the deadline bounds the pod.
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] in (2, "2")
    assert spec["containers"][0]["command"][:3] == ["torchrun", "--standalone", "--nproc_per_node=2"]
    assert spec["activeDeadlineSeconds"] == 3600


@pytest.fixture
def emulator():
    with KubernetesApiEmulator(extra_path=str(Path(sys.executable).parent)) as running:
        yield running


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
    from algo_platform.resources.spark_launcher import K8sSparkLauncher

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

    from algo_platform.assets.engagement import build_engagement_assets
    from algo_platform.ingest.datagen import build_world, generate_day
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
    assets = in_project(build_engagement_assets(project, project.tasks[0], partitions), project)
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
