"""The task contract: what the platform hands a training task, and what the task hands back.

A task is a process Dagster launches through Pipes: the platform's trainer of a task type, or a
team's own program (`command:` in project.yaml). Either way it receives `TaskInputs` as the Pipes
extra `task` (or a JSON file, `--inputs`, when run by hand) and must report one materialization
whose metadata holds `TaskOutputs`' fields. `check_outputs` refuses anything else, naming the rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from algo_platform.core.families import ContractViolation

EXTRA_KEY = "task"
# Formats a task may write its model in: the platform's weights-only checkpoint (its own families and
# team classes of the task type's interface), or an MLflow model folder (any framework).
MODEL_FORMATS = ("torch-state", "mlflow")


@dataclass(frozen=True)
class TaskInputs:
    """Everything a training task is given."""

    project: str
    task: str  # the task's name in project.yaml
    task_type: str  # next_item | engagement
    partition: str  # the day trained for (its held-out day)
    tables: dict[str, str]  # input table -> URI (Parquet), e.g. {"examples": "s3://.../2024-01-07.parquet"}
    hyperparameters: dict[str, Any]  # the task's model section of project.yaml, defaults filled in
    output_dir: str  # where the model goes; keyed by what is trained, so a retry finds its checkpoint
    device: str = "auto"  # auto | cpu | cuda
    gpus: int = 0
    label: dict[str, Any] = field(default_factory=dict)  # the task type's label definition, if it has one
    features: list[str] = field(default_factory=list)  # the feature columns of the input table, in order

    @property
    def checkpoint_dir(self) -> str:
        """Survives retries of the same training: resume from what is there."""
        return self.output_dir

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_mapping(cls, value: dict[str, Any]) -> TaskInputs:
        return cls(**value)


@dataclass(frozen=True)
class TaskOutputs:
    """What a task reports (Pipes materialization metadata) when it has trained."""

    model_uri: str
    model_format: str  # one of MODEL_FORMATS
    metrics_per_epoch: list[dict[str, float]]
    validation_metric: str  # the task type's primary metric, e.g. auc
    validation_value: float


def _plain(value: Any) -> Any:
    """A reported metadata value without its Pipes wrapper ({"raw_value": ..., "type": ...})."""
    return value.get("raw_value", value) if isinstance(value, dict) else getattr(value, "value", value)


def check_outputs(reported: dict[str, Any], primary_metric: str) -> TaskOutputs:
    """The task's report as `TaskOutputs`, or a ContractViolation naming what is missing or wrong."""
    values = {key: _plain(value) for key, value in reported.items()}
    for key in ("model_uri", "model_format", "metrics_per_epoch"):
        if key not in values:
            raise ContractViolation(
                "reports its outputs",
                f"the task reported no {key!r} (it reported {sorted(values) or 'nothing'}); report "
                "model_uri, model_format, metrics_per_epoch and validation_" + primary_metric,
            )
    if values["model_format"] not in MODEL_FORMATS:
        raise ContractViolation(
            "declared model format", f"model_format {values['model_format']!r}; use one of {', '.join(MODEL_FORMATS)}"
        )
    metric_key = f"validation_{primary_metric}"
    metric = values.get(metric_key)
    if not isinstance(metric, (int, float)) or isinstance(metric, bool) or metric != metric:
        raise ContractViolation(
            "reports its validation metric",
            f"the task reported {metric_key}={metric!r}; the task type is promoted on {primary_metric} and needs "
            "the validation value as a number",
        )
    epochs = values["metrics_per_epoch"]
    if not isinstance(epochs, list) or not all(isinstance(row, dict) for row in epochs):
        raise ContractViolation("metrics per epoch", "metrics_per_epoch must be a list of {metric: value} per epoch")
    return TaskOutputs(str(values["model_uri"]), values["model_format"], epochs, primary_metric, float(metric))
