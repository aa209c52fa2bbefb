"""sequence_model: trains the next-item model (the family project.yaml names) through Dagster Pipes.

The asset only prepares arguments, launches and reports; the GPU work happens in the trainer
process (a local subprocess, or a pod in Kubernetes), which reports loss and metrics back.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import Field
from typing import Any

import dagster as dg
import pydantic
from upath import UPath

from algo_platform.core.families import CONTRACT_EXIT_CODE, family_source, is_file_spec, project_file_spec
from algo_platform.core.hyperparameters import TrainConfig, launch_settable, python_type
from algo_platform.core.project import NEXT_ITEM_FAMILIES, projects_dir
from algo_platform.core.version import code_version
from algo_platform.resources.launcher import TrainingLauncher
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.project import ProjectResource
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking


def launchpad_config(defaults: Mapping[str, Any] | None = None) -> type[dg.Config]:
    """The trainer's hyper-parameters a launch may set, as a launchpad config: each field with its
    default, its help and its bounds, taken from `TrainConfig` (the trainer's command line is built
    from the same fields); `defaults` are the project's own values. The model family is not among
    them: it is the project's (project.yaml), since it decides which code the trainer imports."""
    defaults = defaults or {}
    return pydantic.create_model(
        "TrainerLaunchConfig",
        __base__=dg.Config,
        __doc__="Trainer hyper-parameters, editable in the launchpad; all of them are logged to MLflow.",
        **{
            f.name: (
                python_type(f.type),
                pydantic.Field(default=defaults.get(f.name, f.default), description=f.metadata["help"], **_bounds(f)),
            )
            for f in launch_settable(TrainConfig)
        },
    )


def _bounds(field: Field) -> dict[str, float]:
    bounds = field.metadata["bounds"]
    return {"ge": bounds[0], "le": bounds[1]} if bounds else {}


def trainer_args(config: dg.Config) -> list[str]:
    """The trainer's command-line flags for `config`."""
    args = []
    for name, value in config.model_dump().items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        else:
            args += [flag, str(value)]
    return args


def file_identity(path: UPath) -> str:
    """Changes when the file is rewritten (size and time locally, the ETag on object stores)."""
    return f"{path}@{path.fs.checksum(path.path)}"


def training_key(hyperparameters: Mapping[str, Any], sequences: UPath, vocabulary: UPath) -> str:
    """Names one training: the same inputs and hyper-parameters give the same key."""
    identity = {
        "config": dict(hyperparameters),
        "sequences": file_identity(sequences),
        "vocabulary": file_identity(vocabulary),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _class_code(family: str, project: str) -> dict:
    """A team class's file as an artifact of the registered version, and where the wrapper finds it."""
    from algo_platform.evaluation.recommender import DEFAULT_K

    if not is_file_spec(family):
        return {}
    path = project_file_spec(family, projects_dir() / project)
    file, class_name = path.rsplit(":", 1)
    return {"code": {"family_code": file}, "model_config": {"k": DEFAULT_K, "family_class": class_name}}


def build_model_asset(
    partitions: PeriodPartitions, hyperparameters: Mapping[str, Any], pool: str
) -> dg.AssetsDefinition:
    """The model asset of one project: its hyper-parameters are the launchpad's defaults, its
    training step runs in the project's pool."""
    config_class = launchpad_config(hyperparameters)
    family = hyperparameters.get("model", TrainConfig.model)
    family_settings = hyperparameters.get("family_settings", TrainConfig.family_settings)

    @dg.asset(
        partitions_def=partitions,
        group_name="training",
        io_manager_key="json_io_manager",
        pool=pool,
        kinds={"pytorch"},
        # A retry finds the same output folder (keyed by what it trains) and the trainer resumes from
        # its last checkpoint there instead of starting over (a lost node or pod costs minutes, not hours).
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
        description=f"Next-item model of family {family} (project.yaml's model.family), trained by the "
        "Pipes-launched trainer.",
    )
    def sequence_model(
        context: dg.AssetExecutionContext,
        config: config_class,  # type: ignore[valid-type]
        project: ProjectResource,
        training_launcher: TrainingLauncher,
        storage: PlatformStorage,
        experiment_tracking: ExperimentTracking,
        training_sequences: UPath,
        item_vocabulary: UPath,
    ) -> dg.Output[dict]:
        # Keyed by what it trains, not by the run: a retry (a new run after a killed worker) finds the
        # previous attempt's checkpoint and resumes it.
        hyperparameters = {"model": family, "family_settings": family_settings, **config.model_dump()}
        output_dir = storage.layout.model_output(
            "sequence_model",
            context.partition_key,
            training_key(hyperparameters, training_sequences, item_vocabulary),
        )
        # A team's family in its project folder (`models.py:MyModel`) reaches the trainer as an absolute
        # path, checked to lie inside that folder.
        args = [
            "--sequences", str(training_sequences),
            "--vocabulary", str(item_vocabulary),
            "--output-dir", output_dir,
            "--model", project_file_spec(family, projects_dir() / project.name),
            "--family-settings", family_settings,
            *trainer_args(config),
        ]  # fmt: skip
        try:
            invocation = training_launcher.run_trainer(context, args)
        except Exception as error:  # each launcher says how its process ended: its exit status is in it
            if f"code {CONTRACT_EXIT_CODE}" in str(error):
                raise dg.Failure(
                    description=f"{family} breaks the task contract; the trainer's log above names the rule. "
                    "Not retried: the same model would break it again.",
                    allow_retries=False,
                ) from None
            raise
        reported = {key: value.value for key, value in (invocation.get_materialize_result().metadata or {}).items()}
        reported |= training_launcher.gpu_usage(context, reported)
        model_uri, losses = str(reported["model_uri"]), list(reported["loss_per_epoch"])

        # Lineage: every model can be traced to its data, code and hyper-parameters.
        lineage = {
            "family": f"{family}+{config.blend_with}" if config.blend_with else family,
            "source": family_source(family, NEXT_ITEM_FAMILIES),
            "dagster_run_id": context.run_id,
            "dagster_partition": context.partition_key,
            "data_window_days": str(project.window_days),
            "project": project.name,
            "training_sequences": str(training_sequences),
            "code_version": code_version(),
        }
        numeric = {k: float(v) for k, v in reported.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        mlflow_run_id = experiment_tracking.log_training(
            run_name=f"sequence_model {context.partition_key}",
            params={**hyperparameters, "partition": context.partition_key, "window_days": project.window_days},
            epoch_losses=losses,
            metrics=numeric,
            tags=lineage,
            artifacts=[model_uri],
        )
        version = experiment_tracking.register(
            mlflow_run_id, model_uri, tags=lineage, **_class_code(family, project.name)
        )
        descriptor = {
            "model_uri": model_uri,
            "partition": context.partition_key,
            "run_id": context.run_id,
            "hyperparameters": hyperparameters,
            "training_sequences": str(training_sequences),
            "losses": losses,
            "mlflow_run_id": mlflow_run_id,
            "model_version": version.version,
            "code_version": lineage["code_version"],
            "family": lineage["family"],
            "source": lineage["source"],
        }
        return dg.Output(
            descriptor,
            metadata={
                **{
                    key: value
                    for key, value in reported.items()
                    if key not in ("loss_per_epoch", "model_uri", "validation_ndcg_per_epoch")
                },
                "loss_per_epoch": dg.MetadataValue.json(losses),
                "validation_ndcg_per_epoch": dg.MetadataValue.json(list(reported.get("validation_ndcg_per_epoch", []))),
                "model_uri": dg.MetadataValue.path(model_uri),
                "mlflow_run_id": mlflow_run_id,
                "mlflow_run": dg.MetadataValue.url(experiment_tracking.run_url(mlflow_run_id)),
                "registered_model_version": f"{experiment_tracking.registered_model_name} v{version.version}",
                "code_version": lineage["code_version"],
                "family": lineage["family"],
                "source": lineage["source"],
            },
        )

    return sequence_model
