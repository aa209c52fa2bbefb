"""sequence_model: trains the SASRec model by launching the trainer through Dagster Pipes.

The asset only prepares arguments, launches and reports; the GPU work happens in the trainer
process (a local subprocess, or a pod in Kubernetes), which reports loss and metrics back.
"""

import hashlib
import json

import dagster as dg
from upath import UPath

from algo_platform import code_version
from algo_platform.assets.partitions import TRAINING_WINDOW_DAYS, daily_partitions
from algo_platform.resources.launcher import TrainingLauncher
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking
from algo_platform.training.config import TrainConfig

_DEFAULTS = TrainConfig()


class SequenceModelConfig(dg.Config):
    """Hyper-parameters, editable in the launchpad."""

    epochs: int = _DEFAULTS.epochs
    checkpoint_every: int = _DEFAULTS.checkpoint_every
    batch_size: int = _DEFAULTS.batch_size
    max_len: int = _DEFAULTS.max_len
    hidden_dim: int = _DEFAULTS.hidden_dim
    num_layers: int = _DEFAULTS.num_layers
    num_heads: int = _DEFAULTS.num_heads
    dropout: float = _DEFAULTS.dropout
    learning_rate: float = _DEFAULTS.learning_rate
    weight_decay: float = _DEFAULTS.weight_decay
    seed: int = _DEFAULTS.seed
    device: str = _DEFAULTS.device

    def to_cli_args(self) -> list[str]:
        args = []
        for name, value in self.model_dump().items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        return args


def _file_identity(path: UPath) -> str:
    """Changes when the file is rewritten (size and time locally, the ETag on object stores)."""
    return f"{path}@{path.fs.checksum(path.path)}"


def training_key(config: SequenceModelConfig, sequences: UPath, vocabulary: UPath) -> str:
    """Names one training: the same inputs and hyper-parameters give the same key."""
    identity = {
        "config": config.model_dump(),
        "sequences": _file_identity(sequences),
        "vocabulary": _file_identity(vocabulary),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="training",
    io_manager_key="json_io_manager",
    pool="gpu",
    kinds={"pytorch"},
    # A retry finds the same output folder (keyed by what it trains) and the trainer resumes from
    # its last checkpoint there instead of starting over (a lost node or pod costs minutes, not hours).
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
)
def sequence_model(
    context: dg.AssetExecutionContext,
    config: SequenceModelConfig,
    training_launcher: TrainingLauncher,
    storage: PlatformStorage,
    experiment_tracking: ExperimentTracking,
    training_sequences: UPath,
    item_vocabulary: UPath,
) -> dg.Output[dict]:
    """SASRec next-item model trained on the window's sequences by the Pipes-launched trainer."""
    # Keyed by what it trains, not by the run: a retry (a new run after a killed worker) finds the
    # previous attempt's checkpoint and resumes it.
    output_dir = storage.path(
        "models", "sequence_model", context.partition_key, training_key(config, training_sequences, item_vocabulary)
    )
    args = [
        "--sequences", str(training_sequences),
        "--vocabulary", str(item_vocabulary),
        "--output-dir", output_dir,
        *config.to_cli_args(),
    ]  # fmt: skip
    invocation = training_launcher.run_trainer(context, args)
    reported = {key: value.value for key, value in (invocation.get_materialize_result().metadata or {}).items()}
    model_uri, losses = str(reported["model_uri"]), list(reported["loss_per_epoch"])

    # Lineage: every model can be traced to its data, code and hyper-parameters.
    lineage = {
        "dagster_run_id": context.run_id,
        "dagster_partition": context.partition_key,
        "data_window_days": str(TRAINING_WINDOW_DAYS),
        "training_sequences": str(training_sequences),
        "code_version": code_version(),
    }
    numeric = {k: float(v) for k, v in reported.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    mlflow_run_id = experiment_tracking.log_training(
        run_name=f"sequence_model {context.partition_key}",
        params={**config.model_dump(), "partition": context.partition_key, "window_days": TRAINING_WINDOW_DAYS},
        epoch_losses=losses,
        metrics=numeric,
        tags=lineage,
        artifacts=[model_uri],
    )
    version = experiment_tracking.register(mlflow_run_id, model_uri, tags=lineage)
    descriptor = {
        "model_uri": model_uri,
        "partition": context.partition_key,
        "run_id": context.run_id,
        "hyperparameters": config.model_dump(),
        "training_sequences": str(training_sequences),
        "losses": losses,
        "mlflow_run_id": mlflow_run_id,
        "model_version": version.version,
        "code_version": lineage["code_version"],
    }
    return dg.Output(
        descriptor,
        metadata={
            **{key: value for key, value in reported.items() if key not in ("loss_per_epoch", "model_uri")},
            "loss_per_epoch": dg.MetadataValue.json(losses),
            "model_uri": dg.MetadataValue.path(model_uri),
            "mlflow_run_id": mlflow_run_id,
            "mlflow_run": dg.MetadataValue.url(experiment_tracking.run_url(mlflow_run_id)),
            "registered_model_version": f"{experiment_tracking.registered_model_name} v{version.version}",
            "code_version": lineage["code_version"],
        },
    )
