"""An engagement task's training side: `<t>_examples` (with their suite) -> `<t>_model`, trained
through Pipes by the task type's trainer or the team's own command and checked against the task
contract; and what its serving side (engagement_serving.py) shares with it."""

import datetime as dt
import hashlib
import json

import dagster as dg
import pandas as pd
import polars as pl
from upath import UPath

from algo_platform.assets.model import file_identity
from algo_platform.core.families import ContractViolation, family_source, project_file_spec
from algo_platform.core.project import ENGAGEMENT_FAMILIES, Project, Task, projects_dir
from algo_platform.core.version import code_version
from algo_platform.quality.contracts import hard
from algo_platform.resources.data_quality import DataQuality, suite_check_result
from algo_platform.resources.io_managers import AS_PATH
from algo_platform.resources.launcher import TrainingLauncher
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking
from algo_platform.tasks.contract import EXTRA_KEY, TaskInputs, check_outputs
from algo_platform.tasks.engagement.examples import build_examples
from algo_platform.tasks.engagement.features import FEATURES

ENGAGEMENT_TRAINER = ["python", "-m", "algo_platform.tasks.engagement.train"]
PRIMARY_METRIC = "auc"
CANDIDATE = "engagement_model"


def tracking_key(task: Task) -> str:
    """The resource key of a task's experiment tracking and registry."""
    return f"{task.name}_tracking"


def events_frame(cleaned_events: dict[str, pd.DataFrame]) -> pl.DataFrame:
    frames = [cleaned_events[key] for key in sorted(cleaned_events) if len(cleaned_events[key])]
    if not frames:
        raise dg.Failure(description="the window holds no cleaned events; ingest its days first")
    return pl.from_pandas(pd.concat(frames, ignore_index=True))


def _descriptor_key(task: Task, examples: UPath, hyperparameters: dict) -> str:
    """Names one training of the task: the same examples, task and hyper-parameters give the same key."""
    identity = {"task": task.model_dump(), "examples": file_identity(examples), "hyperparameters": hyperparameters}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def examples_rules() -> list:
    return [
        hard("ExpectColumnValuesToBeInSet", column="label", value_set=[0, 1]),
        hard("ExpectColumnValuesToBeInSet", column="split", value_set=["train", "validation", "holdout"]),
        *(hard("ExpectColumnValuesToNotBeNull", column=name) for name in FEATURES),
        # Something to learn from and something to evaluate on, and both labels to learn.
        hard("ExpectColumnDistinctValuesToContainSet", column="split", value_set=["train", "holdout"]),
        hard("ExpectColumnDistinctValuesToContainSet", column="label", value_set=[0, 1]),
    ]


def training_assets(project: Project, task: Task, partitions: PeriodPartitions, window: dg.AssetIn) -> list:
    """The examples (with their suite) and the model of one engagement task of `project`."""
    t = task.name
    label = task.label
    folder = projects_dir() / project.name

    @dg.asset(name=f"{t}_examples", ins={"cleaned_events": window}, partitions_def=partitions, group_name="training",
              kinds={"polars", "parquet"})  # fmt: skip
    def examples(context: dg.AssetExecutionContext, cleaned_events: dict[str, pd.DataFrame]) -> dg.Output[pd.DataFrame]:
        """One row per impression of the window: label, and features from the days before its day."""
        day = dt.date.fromisoformat(context.partition_key)
        frame = build_examples(events_frame(cleaned_events), day, label.events, label.complete_ratio).to_pandas()
        by_split = frame.groupby("split")["label"].agg(["size", "mean"])
        return dg.Output(
            frame,
            metadata={
                "window": f"{min(cleaned_events)} .. {max(cleaned_events)}",
                **{f"{split}_examples": int(by_split.loc[split, "size"]) for split in by_split.index},
                **{f"{split}_positive_rate": float(by_split.loc[split, "mean"]) for split in by_split.index},
                "label": f"events {', '.join(label.events)}"
                + (f" or watched >= {label.complete_ratio:.0%}" if label.complete_ratio else ""),
                "features": ", ".join(FEATURES),
            },
        )

    @dg.asset_check(asset=examples, name=f"{t}_examples_suite", blocking=True, partitions_def=partitions)
    def examples_suite(examples: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
        """Labels are 0/1, features present, a training and a held-out day, and both labels."""
        return suite_check_result(
            data_quality.validate(examples.drop(columns=["day"]), examples_rules(), f"{t}_examples_suite"),
            f"{t}_examples_suite",
        )

    @dg.asset(
        name=f"{t}_model",
        ins={"examples": dg.AssetIn(key=f"{t}_examples", metadata=AS_PATH)},
        partitions_def=partitions,
        group_name="training",
        io_manager_key="json_io_manager",
        pool=project.compute.pool,
        kinds={"pytorch"} if not task.command else {"python"},
        required_resource_keys={tracking_key(task), "training_launcher", "storage"},
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    )
    def model(context: dg.AssetExecutionContext, examples: UPath) -> dg.Output[dict]:
        """The task's model, trained through Dagster Pipes by its trainer (or the team's command)."""
        tracking: ExperimentTracking = getattr(context.resources, tracking_key(task))
        training_launcher: TrainingLauncher = context.resources.training_launcher
        storage: PlatformStorage = context.resources.storage
        hyperparameters = task.hyperparameters()
        if not task.command:
            hyperparameters["family"] = project_file_spec(hyperparameters["family"], folder)
        output_dir = storage.layout.model_output(
            f"{t}_model", context.partition_key, _descriptor_key(task, examples, hyperparameters)
        )
        inputs = TaskInputs(
            project=project.name,
            task=t,
            task_type=task.type,
            partition=context.partition_key,
            tables={"examples": str(examples)},
            hyperparameters=hyperparameters,
            output_dir=output_dir,
            gpus=project.compute.gpus,
            label=label.model_dump(),
            features=list(FEATURES),
        )
        invocation = training_launcher.run_task(
            context,
            task.command or ENGAGEMENT_TRAINER,
            {EXTRA_KEY: json.loads(inputs.to_json())},
            image=task.image,
            cwd=str(folder.resolve()) if task.command else None,
        )
        reported = dict(invocation.get_materialize_result().metadata or {})
        usage = training_launcher.gpu_usage(context, {key: value.value for key, value in reported.items()})
        from algo_platform.tasks.engagement.scorer import load_scorer, probe

        try:
            outputs = check_outputs(reported, PRIMARY_METRIC)
            # Before registration: the model scores real examples of the day with the task's features.
            frame = pd.read_parquet(str(examples))
            probed = probe(load_scorer(outputs.model_uri, outputs.model_format), frame[frame["split"] == "holdout"])
        except ContractViolation as error:
            raise dg.Failure(
                description=f"{t}: {error}. Not retried: the same model would break it again.", allow_retries=False
            ) from None
        command = " ".join(task.command or ())
        source = f"command {command}" + (f" in {task.image}" if task.image else "")
        lineage = {
            "family": task.family,
            "source": source if task.command else family_source(task.family, ENGAGEMENT_FAMILIES),
            "dagster_run_id": context.run_id,
            "dagster_partition": context.partition_key,
            "project": project.name,
            "task": t,
            "examples": str(examples),
            "code_version": code_version(),
            "model_format": outputs.model_format,
        }
        losses = [float(epoch.get("loss", float("nan"))) for epoch in outputs.metrics_per_epoch]
        mlflow_run_id = tracking.log_training(
            run_name=f"{t}_model {context.partition_key}",
            params={**hyperparameters, "partition": context.partition_key, "window_days": task.window_days},
            epoch_losses=losses,
            metrics={f"validation_{PRIMARY_METRIC}": outputs.validation_value, **probed, **usage},
            tags=lineage,
        )
        from algo_platform.tasks.engagement.pyfunc import EngagementPredictor

        version = tracking.register(
            mlflow_run_id,
            outputs.model_uri,
            tags=lineage,
            python_model=EngagementPredictor(),
            model_config={"model_format": outputs.model_format},
        )
        descriptor = {
            "model_uri": outputs.model_uri,
            "model_format": outputs.model_format,
            "partition": context.partition_key,
            "run_id": context.run_id,
            "hyperparameters": hyperparameters,
            "metrics_per_epoch": outputs.metrics_per_epoch,
            "mlflow_run_id": mlflow_run_id,
            "model_version": version.version,
            "code_version": lineage["code_version"],
            "family": lineage["family"],
            "source": lineage["source"],
        }
        return dg.Output(
            descriptor,
            metadata={
                f"validation_{PRIMARY_METRIC}": outputs.validation_value,
                "metrics_per_epoch": dg.MetadataValue.json(outputs.metrics_per_epoch),
                "model_uri": dg.MetadataValue.path(outputs.model_uri),
                "model_format": outputs.model_format,
                "trained_by": " ".join(task.command) if task.command else hyperparameters["family"],
                "family": lineage["family"],
                "source": lineage["source"],
                "registered_model_version": f"{tracking.registered_model_name} v{version.version}",
                "mlflow_run": dg.MetadataValue.url(tracking.run_url(mlflow_run_id)),
                **probed,
                **usage,
            },
        )

    return [examples, examples_suite, model]
