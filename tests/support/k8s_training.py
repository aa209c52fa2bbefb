"""The trainer launched through the emulator: the launcher pointed at it, the model asset
materialized with it, and the inputs it trains on (tests/system/test_k8s_*.py)."""

from pathlib import Path

import dagster as dg

from algo_platform.assets.model import build_model_asset
from algo_platform.definitions import in_project
from algo_platform.resources.environment import build_resources
from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
from algo_platform.resources.partitions import project_partitions
from tests.support.factories import END_DAY, PROJECT, make_project, write_inputs

DAY = END_DAY.isoformat()


def emulated_launcher(settings, emulator, tmp_path, **overrides) -> K8sTrainingLauncher:
    """The launcher pointed at the emulator, with no secrets to mount (several nodes: the Job launcher)."""
    from algo_platform.resources.k8s_multinode import K8sMultiNodeTrainingLauncher

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
