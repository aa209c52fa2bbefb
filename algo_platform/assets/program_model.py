"""sequence_model of a project whose next-item model is a team's own program (`model.command:`).

The program gets the training interactions, the catalogue and its settings through the task
contract (`algo_platform.tasks.next_item`), runs through Pipes like the platform's trainer (a
subprocess in the project's folder, or a pod of `model.image` on Kubernetes), and hands back an
MLflow pyfunc. The platform probes that pyfunc on real users before registering it; evaluation and
serving then ask it as they ask any candidate, so the program wins or loses on the same split.
"""

import json

import dagster as dg
import numpy as np
from upath import UPath

from algo_platform.assets.model import training_key
from algo_platform.core.families import ContractViolation
from algo_platform.core.project import NEXT_ITEM_TASK, Project, projects_dir
from algo_platform.core.version import code_version
from algo_platform.evaluation.program import MIN_K
from algo_platform.resources.launcher import TrainingLauncher
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking
from algo_platform.tasks.contract import EXTRA_KEY, TaskInputs, check_outputs
from algo_platform.tasks.next_item import PRIMARY_METRIC, PROBE_USERS

LIST_LENGTH = 100  # items per list the program is asked for unless its settings say `k`


def program_settings(project: Project) -> dict:
    """What the program is told: its own settings, and the protocol it is judged by."""
    settings = project.model.settings()
    k = settings.get("k", LIST_LENGTH)
    if not isinstance(k, int) or k < MIN_K:
        raise dg.Failure(description=f"model.k: {k!r}; a list holds at least {MIN_K} items (evaluation reads @20)")
    return {
        "seed": 0,
        **settings,
        "k": k,
        "exclude_seen": project.exclude_seen,
        "evaluation": project.training.evaluation,
    }


def _probe_sample(sequences: UPath, vocabulary: UPath) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Up to PROBE_USERS users with a training history (raw ids), chosen by a fixed seed, and the catalogue."""
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import read_sequences

    data = read_sequences(str(sequences))
    item_ids = read_item_ids(str(vocabulary))
    offsets = data.history.offsets
    rows = np.flatnonzero(data.history.lengths > 0)
    rows = np.sort(np.random.default_rng(0).permutation(rows)[:PROBE_USERS])
    histories = [item_ids[data.history.values[offsets[r] : offsets[r + 1]]] for r in rows]
    return data.user_ids[rows], histories, item_ids[1:]


def build_program_model_asset(partitions: PeriodPartitions, project: Project, pool: str) -> dg.AssetsDefinition:
    command = list(project.model.command or ())
    image = project.model.image
    source = f"command {' '.join(command)}" + (f" in {image}" if image else "")

    @dg.asset(
        name="sequence_model",
        partitions_def=partitions,
        group_name="training",
        io_manager_key="json_io_manager",
        pool=pool,
        kinds={"python", "mlflow"},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
        description=f"Next-item model trained by the team's program ({source}), probed before registration.",
    )
    def sequence_model(
        context: dg.AssetExecutionContext,
        training_launcher: TrainingLauncher,
        storage: PlatformStorage,
        experiment_tracking: ExperimentTracking,
        training_sequences: UPath,
        item_vocabulary: UPath,
    ) -> dg.Output[dict]:
        from algo_platform.evaluation.program import load_program, probe
        from algo_platform.tasks.next_item import training_tables

        settings = program_settings(project)
        key = training_key({"command": command, "image": image, **settings}, training_sequences, item_vocabulary)
        output_dir = storage.layout.model_output("sequence_model", context.partition_key, key)
        inputs = TaskInputs(
            project=project.name,
            task=NEXT_ITEM_TASK,
            task_type=NEXT_ITEM_TASK,
            partition=context.partition_key,
            tables=training_tables(str(training_sequences), str(item_vocabulary), output_dir),
            hyperparameters=settings,
            output_dir=output_dir,
            gpus=project.compute.gpus,
        )
        invocation = training_launcher.run_task(
            context,
            command,
            {EXTRA_KEY: json.loads(inputs.to_json())},
            image=image,
            cwd=str((projects_dir() / project.name).resolve()),
        )
        reported = dict(invocation.get_materialize_result().metadata or {})
        usage = training_launcher.gpu_usage(context, {k: v.value for k, v in reported.items()})
        try:
            outputs = check_outputs(reported, PRIMARY_METRIC)
            if outputs.model_format != "mlflow":
                raise ContractViolation("an MLflow pyfunc", f"model_format {outputs.model_format!r}; write mlflow")
            users, histories, catalogue = _probe_sample(training_sequences, item_vocabulary)
            probed = probe(load_program(outputs.model_uri), users, histories, catalogue, MIN_K, project.exclude_seen)
        except ContractViolation as error:
            raise dg.Failure(
                description=f"{source} breaks the next-item contract: {error}. Not retried: the same program "
                "would break it again.",
                allow_retries=False,
            ) from None
        context.log.info(
            f"probe passed on {probed['probe_users']} users: "
            f"{probed['probe_seconds_per_1000_users']:.3f} s per 1,000 users"
        )
        lineage = {
            "family": "command",
            "source": source,
            "dagster_run_id": context.run_id,
            "dagster_partition": context.partition_key,
            "data_window_days": str(project.training.window_days),
            "project": project.name,
            "training_sequences": str(training_sequences),
            "code_version": code_version(),
            "model_format": "mlflow",
        }
        losses = [float(epoch["loss"]) for epoch in outputs.metrics_per_epoch if "loss" in epoch]
        mlflow_run_id = experiment_tracking.log_training(
            run_name=f"sequence_model {context.partition_key}",
            # Prefixed: the registered pyfunc's own config (its `k`) is logged as params of the same run.
            params={
                **{f"program_{key}": value for key, value in settings.items()},
                "command": " ".join(command),
                "partition": context.partition_key,
            },
            epoch_losses=losses,
            metrics={f"validation_{PRIMARY_METRIC}": outputs.validation_value, **probed, **usage},
            tags=lineage,
        )
        from algo_platform.evaluation.recommender import DEFAULT_K, ProgramRecommender

        version = experiment_tracking.register(
            mlflow_run_id,
            outputs.model_uri,
            tags=lineage,
            python_model=ProgramRecommender(),
            model_config={"k": DEFAULT_K},
            artifact="program",
        )
        descriptor = {
            "model_uri": outputs.model_uri,
            "model_format": "mlflow",
            "partition": context.partition_key,
            "run_id": context.run_id,
            "hyperparameters": settings,
            "training_sequences": str(training_sequences),
            "losses": losses,
            "mlflow_run_id": mlflow_run_id,
            "model_version": version.version,
            "code_version": lineage["code_version"],
            "family": "command",
            "source": source,
        }
        return dg.Output(
            descriptor,
            metadata={
                f"validation_{PRIMARY_METRIC}": outputs.validation_value,
                "metrics_per_epoch": dg.MetadataValue.json(outputs.metrics_per_epoch),
                **probed,
                "model_uri": dg.MetadataValue.path(outputs.model_uri),
                "trained_by": source,
                "family": "command",
                "source": source,
                "registered_model_version": f"{experiment_tracking.registered_model_name} v{version.version}",
                "mlflow_run": dg.MetadataValue.url(experiment_tracking.run_url(mlflow_run_id)),
                **usage,
            },
        )

    return sequence_model
