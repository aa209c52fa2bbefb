"""A team's project: its whole pipeline declared in one YAML file, `projects/<name>/project.yaml`.

The schema is typed (pydantic): a wrong field fails with the file, the field's path, what was given
and what is allowed, before any Dagster object is built. Everything else a project makes (asset
keys, jobs, storage, MLflow names, run tags) is derived from it in `algo_platform.definitions`.
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
import importlib.metadata
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from algo_platform.core import environment
from algo_platform.core.calendar import Grain, ProjectCalendar
from algo_platform.core.families import ContractViolation, is_file_spec, project_file_spec
from algo_platform.core.hyperparameters import EngagementHyperparameters, TrainConfig
from algo_platform.core.schema import CANONICAL_COLUMNS, DEFAULT_INTERACTION_TYPES, EVENT_TYPES

PROJECT_FILE = "project.yaml"
NEXT_ITEM_FAMILIES = ("sasrec", "gru4rec", "hstu", "itemknn", "ease")
FITTED_FAMILIES = ("itemknn", "ease")  # fitted in closed form, no epochs (models/fitted.py)
ENGAGEMENT_FAMILIES = ("mlp",)
# Installed packages offer model families under this entry-point group (algo_platform.core.families).
MODEL_ENTRY_POINTS = "algo_platform.models"
# The project's next-item task: declared by its `model:` and `training:` sections.
NEXT_ITEM_TASK = "next_item"
NAME_PATTERN = r"^[a-z][a-z0-9_]{1,30}$"
# Trainer settings the model section does not set: the family is `family:`, the rest is compute's.
COMPUTE_DECIDES = ("model", "device", "family_settings", "strategy", "activation_checkpointing")
# Run tag every run of a project carries; the run queue's per-project limits key on it.
PROJECT_TAG = "algo_platform/project"
# The Kubernetes label on a project's training pods.
PROJECT_LABEL = "algo-platform/project"
# Present on training runs only, valued by project: one training run per project at a time.
TRAINING_TAG = "algo_platform/training"


class ProjectError(ValueError):
    """A project file that cannot be used, with everything needed to fix it."""


def known_event_types(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown or not value:
        raise ValueError(f"{unknown or 'empty list'}: allowed event types are {', '.join(EVENT_TYPES)}")
    return value


def check_hyperparameters(values: dict[str, Any], known_fields: Any, prefix: str = "") -> None:
    """Every value names a field of the trainer's hyper-parameters and has its type (an int may be a float)."""
    known = {f.name: f for f in known_fields}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown hyper-parameter {prefix}{name}; allowed: {', '.join(known)}")
        expected = type(known[name].default)
        exact = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
        widened = expected is float and isinstance(value, int) and not isinstance(value, bool)
        if not (exact or widened):
            raise ValueError(f"{prefix}{name}: {value!r} is not of type {expected.__name__}")
        choices = known[name].metadata.get("choices", ())
        if choices and value not in choices:
            raise ValueError(f"{prefix}{name}: {value!r} is not one of {', '.join(repr(c) for c in choices)}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feedback(_Strict):
    """Explicit feedback: a column (such as a rating) kept from upload to sequences."""

    column: str = Field(description="the column holding the feedback value, e.g. rating")
    threshold: float | None = Field(
        default=None, description="events with a value below this do not count as interactions (None: all count)"
    )


class DataSource(_Strict):
    extra_columns: dict[str, Literal["int64", "float64", "string"]] = Field(
        default_factory=dict,
        description="columns beyond the canonical ones, kept from upload to cleaned events (e.g. rating: float64)",
    )
    column_map: dict[str, str] = Field(
        default_factory=dict,
        description="canonical column -> column in the team's files, the default for `upload --project`",
    )
    interaction_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INTERACTION_TYPES),
        description="event types that count as interactions in training sequences",
    )
    feedback: Feedback | None = None
    engine: Literal["polars", "spark"] = Field(
        default="polars",
        description="what cleans events and computes features: polars on the run's machine, or Spark "
        "(local mode, or executors on Kubernetes sized by compute.spark) for days beyond one machine",
    )
    partition: Grain = Field(
        default="day",
        description="the partition grain: day, week (ISO, from Monday) or month; a log of a few events a day over "
        "years is hundreds of monthly partitions instead of thousands of daily ones (landing folders stay daily)",
    )
    days_per_run: Annotated[int, Field(ge=1, le=1000)] | Literal["auto"] = Field(
        default="auto",
        description="partitions one ingest run of a backfill processes: 1 when a day fills a machine; "
        "hundreds for a history of small days (an import), where each run's start-up would dominate; auto: "
        "chosen from the imported history's rows per partition (1 without an import, and on Spark)",
    )

    @pydantic.field_validator("extra_columns")
    @classmethod
    def _not_canonical(cls, value: dict[str, str]) -> dict[str, str]:
        clashing = sorted(set(value) & {*CANONICAL_COLUMNS, "source_file"})
        if clashing:
            raise ValueError(f"{clashing} are canonical columns already; extra_columns are the others")
        return value

    @pydantic.model_validator(mode="after")
    def _mapped_columns_are_known(self) -> DataSource:
        known = [*CANONICAL_COLUMNS, *self.extra_columns]
        unknown = sorted(set(self.column_map) - set(known))
        if unknown:
            raise ValueError(f"column_map maps {unknown}, which are not loaded columns; choose from {', '.join(known)}")
        return self

    @pydantic.model_validator(mode="after")
    def _feedback_is_a_declared_number(self) -> DataSource:
        if self.feedback is not None and self.extra_columns.get(self.feedback.column) not in ("int64", "float64"):
            raise ValueError(
                f"feedback.column {self.feedback.column!r} must be declared in data.extra_columns as int64 or float64"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _spark_runs_a_day_at_a_time(self) -> DataSource:
        if self.engine == "spark" and self.partition != "day":
            raise ValueError(
                f"partition is {self.partition}, but engine spark runs one day per run (a day on Spark is large): "
                "set partition: day, or engine: polars for a log of small days"
            )
        if self.engine == "spark" and self.days_per_run not in (1, "auto"):
            raise ValueError(
                f"days_per_run is {self.days_per_run}, but engine spark runs one day per run (a day on Spark is large; "
                "a history of small days runs faster on polars): set days_per_run: 1 or engine: polars"
            )
        return self

    @pydantic.field_validator("interaction_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        return known_event_types(value)


class Training(_Strict):
    window_days: Annotated[int, Field(ge=2)] | Literal["all"] = Field(
        default=7,
        description="days of events per training run (the last one held out under next_day), or `all`: "
        "every day from partitions_start up to the evaluated day (logs where users return over years)",
    )
    evaluation: Literal["next_day", "leave_last_out"] = Field(
        default="next_day",
        description="next_day: the window's last day is held out; leave_last_out: each user's last interaction "
        "(the one before it validates); both rank against the full catalogue",
    )
    exclude_seen: bool | None = Field(
        default=None,
        description="evaluation masks the items each user already interacted with, for the model, the champion "
        "and popularity alike (the literature's protocol; serving always does); unset: on for explicit "
        "ratings (data.feedback), off otherwise (a short video is watched again)",
    )


class Model(_Strict):
    """The model family and its hyper-parameters (the trainer's flags; unset ones keep their defaults)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    family: str = Field(
        default="sasrec",
        description="sasrec | gru4rec, a class in the project's folder (`models.py:MyModel`), or an entry point "
        f"of group {MODEL_ENTRY_POINTS} (docs/tasks.md)",
    )

    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="instead of a family: a program that speaks Dagster Pipes and writes an MLflow pyfunc "
        "recommender (docs/tasks.md); the section's other keys are its settings",
    )
    image: str | None = Field(default=None, description="the image the command runs in on Kubernetes")

    @pydantic.field_validator("family")
    @classmethod
    def _family_form(cls, value: str) -> str:
        return family_form(value, NEXT_ITEM_FAMILIES)

    @pydantic.model_validator(mode="after")
    def _known_hyperparameters(self) -> Model:
        if self.command is not None:
            if "family" in self.model_fields_set:
                raise ValueError("command: give either a family or a command (the command is the model), not both")
            return self  # the program's own settings: its business, passed as they are
        if self.image is not None:
            raise ValueError("image: only a command runs in its own image (a family runs in compute.image)")
        # `model` is the family above; `device` is the launcher's business and the strategy compute's.
        known = [f for f in fields(TrainConfig) if f.name not in COMPUTE_DECIDES]
        trainer = {name: value for name, value in (self.model_extra or {}).items() if name in {f.name for f in known}}
        # A team class's own settings are checked against what it declares when the project loads (its file).
        check_hyperparameters(trainer if is_file_spec(self.family) else dict(self.model_extra or {}), known)
        if trainer.get("blend_with") and self.family in FITTED_FAMILIES:
            raise ValueError(f"blend_with: blends a trained family with a fitted one; {self.family} is fitted itself")
        return self

    def family_settings(self) -> dict[str, Any]:
        """The keys of the section that are not the trainer's: a team class's own settings."""
        trainer = {f.name for f in fields(TrainConfig)}
        return {name: value for name, value in (self.model_extra or {}).items() if name not in trainer}

    @property
    def trained_by(self) -> str:
        """The family, or `command` for a team's program."""
        return "command" if self.command else self.family

    def hyperparameters(self) -> dict[str, Any]:
        """The trainer's config with this project's model values: every field of TrainConfig (the
        compute section's are added by `Project.hyperparameters`)."""
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        if self.command:
            return {**defaults, "model": "command"}
        own = self.family_settings()
        trainer = {name: value for name, value in (self.model_extra or {}).items() if name not in own}
        return {**defaults, **trainer, "model": self.family, "family_settings": json.dumps(own, sort_keys=True)}

    def settings(self) -> dict[str, Any]:
        """A command's own settings: the section's keys other than command and image."""
        return dict(self.model_extra or {})


def family_form(value: str, builtin: tuple[str, ...]) -> str:
    """A family spec that can resolve: built in, `<file>.py:<Class>`, or an installed entry point."""
    if re.fullmatch(r"[\w./-]+\.py:[A-Za-z_]\w*", value):
        if value.startswith("/") or ".." in value.split(":", 1)[0].split("/"):
            raise ValueError(f"model family {value!r}: a team's model file is a path inside the project's folder")
        return value
    if value in builtin:
        return value
    installed = sorted(e.name for e in importlib.metadata.entry_points(group=MODEL_ENTRY_POINTS))
    if value in installed:
        return value
    raise ValueError(
        f"model family {value!r} is not one of {', '.join(builtin)}, not <file>.py:<Class> in the project's folder "
        f"and not an installed entry point of group {MODEL_ENTRY_POINTS} ({', '.join(installed) or 'none installed'})"
    )


class Guardrail(_Strict):
    metric: Literal["active_rate", "plays_per_user"] = Field(
        description="active_rate: share of served users with any interaction the next day; plays_per_user: "
        "their interactions the next day"
    )
    margin: float = Field(default=0.02, ge=0, le=1, description="how much worse (a share) it may get")


class Release(_Strict):
    """A grey release of a task's new champion (docs/grey-release.md): it earns its users stage by
    stage through their feedback instead of replacing the champion for everyone at once."""

    stages: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0], description="the challenger's share of users, in percent"
    )
    min_days: int = Field(default=2, ge=1, description="days a stage runs at least")
    min_users: int = Field(default=200, ge=1, description="exposed users per arm a stage needs at least")
    primary_metric: Literal["list_play_rate", "engaged_rate"] = Field(
        default="list_play_rate",
        description="list_play_rate: share of served users who played (or rated) an item of their list the next "
        "day; engaged_rate (an engagement task's, its default): share of served items its users engaged with",
    )
    margin: float = Field(
        default=0.01, ge=0, le=1, description="at the last stage: how much worse (a share) the challenger may be"
    )
    guardrails: list[Guardrail] = Field(default_factory=lambda: [Guardrail(metric="active_rate")])
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="significance level of the always-valid test")
    test: Literal["msprt"] = Field(
        default="msprt", description="msprt: may be looked at every day (docs/grey-release.md)"
    )
    stale_days: int = Field(default=2, ge=1, description="days without feedback before the release pauses")

    @pydantic.field_validator("stages")
    @classmethod
    def _increasing_shares(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < s <= 100 for s in value) or value != sorted(set(value)):
            raise ValueError(f"{value}: stages are increasing shares of users in (0, 100], e.g. [5, 25, 50, 100]")
        return value


class Label(_Strict):
    """What counts as engaging with an impression (an event: the item was shown and played)."""

    events: list[str] = Field(
        default_factory=lambda: ["like", "share", "comment", "follow"],
        description="event types that are engagement",
    )
    complete_ratio: float | None = Field(
        default=None, gt=0, description="also engagement: watched at least this share of the item (0.9: completed)"
    )

    @pydantic.field_validator("events")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        return known_event_types(value)


class TaskPromotion(_Strict):
    margin: float = Field(default=0.002, ge=0, description="the new model must beat the champion's AUC by this share")
    segment_tolerance: float = Field(default=0.02, ge=0, le=1, description="largest AUC loss allowed in a segment")
    min_segment_users: int = Field(default=50, ge=1)
    baseline: Literal["item_rate", "logistic_regression"] = Field(
        default="item_rate",
        description="what the first model must beat: the item's historical engagement rate, or a logistic "
        "regression on the same features",
    )


class Task(_Strict):
    """A further task of the project (beyond its next-item task): its own model asset, registered model
    `<project>-<task>-<family>` and champion."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,30}$", description="names its assets: <name>_model, ...")
    type: Literal["engagement"] = Field(
        description="engagement: P(user engages | item shown), features of the days before, AUC-promoted, "
        "served by re-ranking the next-item champion's top candidates"
    )
    window_days: int = Field(default=7, ge=3, description="days of events: the first featurises, the last is held out")
    label: Label = Field(default_factory=Label)
    model: dict[str, Any] = Field(default_factory=dict, description="family and hyper-parameters of its trainer")
    command: list[str] | None = Field(
        default=None,
        description="instead of the platform's trainer: a program that speaks Dagster Pipes and writes an MLflow "
        "model (run in the project's folder locally, in `image` on Kubernetes)",
    )
    image: str | None = Field(
        default=None, description="the image a command task (or a team family) runs in on Kubernetes"
    )
    candidates: int = Field(default=100, ge=10, le=1000, description="next-item champion's candidates re-ranked")
    promotion: TaskPromotion = Field(default_factory=TaskPromotion)
    release: Release | None = Field(
        default=None,
        description="grey-release a new champion of this task to a share of users first (docs/grey-release.md)",
    )

    @pydantic.model_validator(mode="before")
    @classmethod
    def _engaged_rate_by_default(cls, data: Any) -> Any:
        release = data.get("release") if isinstance(data, dict) else None
        if isinstance(release, dict) and "primary_metric" not in release:
            return {**data, "release": {**release, "primary_metric": "engaged_rate"}}
        return data

    @pydantic.model_validator(mode="after")
    def _hyperparameters_known(self) -> Task:
        check_hyperparameters(self.model, fields(EngagementHyperparameters), prefix="model.")
        if "family" in self.model:
            family_form(self.model["family"], ENGAGEMENT_FAMILIES)
        if self.command is not None and (not self.command or "family" in self.model):
            raise ValueError("command: give a non-empty command, and no model.family (the command is the model)")
        return self

    @property
    def family(self) -> str:
        return "command" if self.command else self.model.get("family", EngagementHyperparameters.family)

    def hyperparameters(self) -> dict[str, Any]:
        return {**{f.name: f.default for f in fields(EngagementHyperparameters)}, **self.model}


class Schedule(_Strict):
    cron: str = Field(default="0 2 * * *", description="when the retraining job runs")
    timezone: str = "UTC"
    enabled: bool = Field(default=False, description="whether the schedule starts running when the project loads")

    @pydantic.field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as UTC or Asia/Shanghai") from None
        return value

    @pydantic.field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        # The shape only: Dagster judges the fields when the code location builds the schedule
        # (and the location names this file if it refuses); core imports no Dagster.
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a cron schedule (five fields, e.g. '0 2 * * *')")
        return value


class Sensor(_Strict):
    enabled: bool = Field(default=False, description="whether the landing-zone sensor starts when the project loads")


class Promotion(_Strict):
    margin: float = Field(
        default=0.01, ge=0, description="the new model must beat the champion's NDCG@10 by this share"
    )
    segment_tolerance: float = Field(default=0.05, ge=0, le=1, description="largest NDCG@10 loss allowed in a segment")
    min_segment_users: int = Field(default=50, ge=1, description="smaller segments cannot veto a promotion")


class SparkCompute(_Strict):
    """The Spark application of a project with data.engine: spark, on Kubernetes (local mode ignores the executors)."""

    executors: int = Field(default=4, ge=1, description="executor pods")
    executor_cores: int = Field(default=4, ge=1)
    executor_memory: str = Field(default="16g", pattern=r"^\d+[mg]$", description="JVM heap of each executor, e.g. 16g")
    driver_memory: str = Field(default="8g", pattern=r"^\d+[mg]$")


class Compute(_Strict):
    pool: str = Field(default="gpu", description="Dagster pool of the training step")
    image: str | None = Field(
        default=None,
        description="the project's trainer image on Kubernetes: the platform's trainer image plus the team's "
        "package (its model families); unset: the platform's",
    )
    gpus: int = Field(default=1, ge=0, description="GPUs of the Kubernetes training pod (more than one: DDP)")
    nodes: int = Field(
        default=1, ge=1, le=64, description="nodes of gpus each (more than one: an Indexed Job, torchrun --nnodes)"
    )
    strategy: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="with several GPUs: ddp replicates the model on each; fsdp shards the network (FSDP2) and, "
        "with a sampled loss, the item table by rows, for models or catalogues larger than one GPU",
    )
    activation_checkpointing: bool = Field(
        default=False, description="fsdp: recompute each block's activations in the backward pass"
    )
    cpu: str = "4"
    memory: str = "16Gi"
    priority: int = Field(default=0, ge=-10, le=10, description="dagster/priority of the project's runs")
    priority_class: str = Field(default="algo-platform-training", description="Kubernetes PriorityClass of the pod")
    queue: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="the team's GPU queue in the platform's fleet file (deploy/gpu-fleet.yaml): Kueue admits the "
        "training pod against that team's quota; unset: no queue",
    )
    queue_priority: str | None = Field(
        default=None,
        description="a priority of the fleet file (e.g. production, experiment); unset: the pod's PriorityClass",
    )
    idle_gpu_percent: float = Field(
        default=5.0, ge=0, le=100, description="a trainer whose GPUs stay under this utilisation (NVML) ..."
    )
    idle_minutes: float = Field(
        default=30.0,
        gt=0,
        le=24 * 60,
        description="... this long stops after a checkpoint: the GPUs go back to the fleet",
    )
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    spark: SparkCompute = Field(default_factory=SparkCompute)


class Project(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="lower-case letters, digits and _, 2-31 characters")
    owners: list[str] = Field(min_length=1, description="e-mail addresses or team:<name>")
    description: str = ""
    partitions_start: dt.date = Field(description="first day of events (YYYY-MM-DD)")
    data: DataSource = Field(default_factory=DataSource)
    training: Training = Field(default_factory=Training)
    model: Model = Field(default_factory=Model)
    schedule: Schedule = Field(default_factory=Schedule)
    sensor: Sensor = Field(default_factory=Sensor)
    promotion: Promotion = Field(default_factory=Promotion)
    release: Release | None = Field(
        default=None, description="a grey release of each new next-item champion; none: it serves everyone at once"
    )
    compute: Compute = Field(default_factory=Compute)
    tasks: list[Task] = Field(default_factory=list, description="further tasks (docs/tasks.md)")

    @pydantic.field_validator("tasks")
    @classmethod
    def _task_names_unique(cls, value: list[Task]) -> list[Task]:
        names = [task.name for task in value]
        clashing = sorted({n for n in names if names.count(n) > 1} | ({NEXT_ITEM_TASK} & set(names)))
        if clashing:
            raise ValueError(f"task names {clashing} are taken (each once; {NEXT_ITEM_TASK!r} is the model: section)")
        return value

    @property
    def exclude_seen(self) -> bool:
        """Whether evaluation masks each user's already-seen items (training.exclude_seen, by default on
        for explicit ratings)."""
        if self.training.exclude_seen is not None:
            return self.training.exclude_seen
        return self.data.feedback is not None

    def task_registered_model_name(self, task: Task) -> str:
        """A further task's registered model, `<project>-<task>`: one champion per task, whatever the
        family of each candidate."""
        return f"{self.name}-{task.name}"

    def legacy_model_names(self, task: Task | None = None) -> tuple[str, str]:
        """(prefix, name) of a task's registered models from before one champion per task: one per
        family, `<project>-<family>` (next-item) or `<project>-<task>-<family>`; `name` is the
        family's of project.yaml, whose champion served."""
        if task is None:
            return f"{self.name}-", f"{self.name}-{_family_slug(self.model.family)}"
        return f"{self.name}-{task.name}-", f"{self.name}-{task.name}-{_family_slug(task.family)}"

    @pydantic.field_validator("owners")
    @classmethod
    def _owner_form(cls, value: list[str]) -> list[str]:
        for owner in value:
            if not (re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", owner) or re.fullmatch(r"team:[\w-]+", owner)):
                raise ValueError(f"{owner!r}: an owner is an e-mail address or team:<name>")
        return value

    @property
    def registered_model_name(self) -> str:
        """The next-item task's registered model, `<project>-next_item`: one champion, whatever the
        family of each candidate (SASRec, EASE, a team's class or program)."""
        return f"{self.name}-{NEXT_ITEM_TASK}"

    @pydantic.model_validator(mode="after")
    def _next_item_release_metric(self) -> Project:
        if self.release is not None and self.release.primary_metric == "engaged_rate":
            raise ValueError(
                "release.primary_metric: engaged_rate is an engagement task's (set it in tasks[].release); "
                "the next-item task's release judges list_play_rate"
            )
        return self

    @pydantic.model_validator(mode="after")
    def _tasks_run_on_days(self) -> Project:
        if self.tasks and self.data.partition != "day":
            raise ValueError(
                f"tasks {[t.name for t in self.tasks]} need data.partition: day (an engagement task holds out the "
                f"window's last day), but partition is {self.data.partition}: set partition: day or remove the tasks"
            )
        return self

    @property
    def calendar(self) -> ProjectCalendar:
        """Which periods are this project's partitions, and what to say about one that is not."""
        return ProjectCalendar(
            self.partitions_start, str(projects_dir() / self.name / PROJECT_FILE), self.data.partition
        )

    @property
    def run_tags(self) -> dict[str, str]:
        return {PROJECT_TAG: self.name, "dagster/priority": str(self.compute.priority)}

    def hyperparameters(self) -> dict[str, Any]:
        """The trainer's config: the model section's values, and how compute splits the training."""
        strategy = {
            "strategy": self.compute.strategy,
            "activation_checkpointing": self.compute.activation_checkpointing,
        }
        return self.model.hyperparameters() | strategy


def _family_slug(family: str) -> str:
    """A family as part of an MLflow model name: `models.py:MyRanker` -> `myranker`."""
    return family.rsplit(":", 1)[-1].lower().replace("_", "-")


def projects_dir() -> Path:
    """Where project folders live: ./projects, or ALGO_PLATFORM_PROJECTS."""
    return Path(environment.read("ALGO_PLATFORM_PROJECTS", "projects"))


def project_names(folder: Path) -> list[str]:
    """The projects in `folder`: its subfolders that hold a project.yaml."""
    return sorted(p.parent.name for p in folder.glob(f"*/{PROJECT_FILE}"))


def _field_path(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def parse_project(document: Any, source: str) -> Project:
    if not isinstance(document, dict):
        raise ProjectError(f"{source}: expected a mapping of fields (name, owners, partitions_start, ...)")
    try:
        return Project.model_validate(document)
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors():
            given = "" if item["type"] == "missing" else f" (given: {str(item.get('input'))[:60]!r})"
            problems.append(f"  {_field_path(item['loc'])}: {item['msg']}{given}")
        raise ProjectError(
            f"{source}: {len(problems)} problem(s) in the project file:\n" + "\n".join(problems)
        ) from None


def top_level_names(file: Path) -> list[str]:
    """The classes, functions and names a Python file defines or imports at its top level, read from
    its syntax tree: the team's code is not run when a project loads."""
    try:
        tree = ast.parse(file.read_text(), str(file))
    except SyntaxError as error:
        raise ProjectError(f"{file}: line {error.lineno}: {error.msg}") from None
    names = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [alias.asname or alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
    return names


def declared_settings(file: Path, class_name: str) -> dict[str, Any]:
    """The `settings = {...}` a team class declares (a literal dict of defaults), read from the syntax tree."""
    for node in ast.parse(file.read_text(), str(file)).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for statement in node.body:
                targets = (
                    statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
                )
                if any(isinstance(t, ast.Name) and t.id == "settings" for t in targets) and statement.value is not None:
                    try:
                        value = ast.literal_eval(statement.value)
                    except ValueError:
                        raise ProjectError(
                            f"{file}: {class_name}.settings must be a literal dict of defaults"
                        ) from None
                    return value if isinstance(value, dict) else {}
    return {}


def _check_family_settings(path: Path, model: Model) -> None:
    """Every key of `model:` is the trainer's or one the team class declares, of the declared type."""
    file, class_name = model.family.split(":", 1)
    declared = declared_settings(path.parent / file, class_name)
    for name, value in model.family_settings().items():
        if name not in declared:
            trainer = sorted(
                f.name for f in fields(TrainConfig) if f.name not in ("model", "device", "family_settings")
            )
            raise ProjectError(
                f"{path}: model.{name}: unknown setting; the trainer's are {', '.join(trainer)}, and "
                f"{class_name}.settings declares {', '.join(declared) or 'none'}"
            )
        expected = type(declared[name])
        if not isinstance(value, expected) and not (expected is float and isinstance(value, int)):
            raise ProjectError(
                f"{path}: model.{name}: {value!r} is not of type {expected.__name__} (its default in "
                f"{class_name}.settings is {declared[name]!r})"
            )


def command_refusal(command: list[str], folder: Path) -> str | None:
    """Why a program's command line may not run, None when it may: like a family's file, everything it
    names lies inside the project's folder. No absolute path and no `..` in any argument, and no
    argument naming a link that leads out of the folder (`python` is the platform's interpreter; other
    programs are found on the PATH)."""
    root = folder.resolve()
    for argument in command:
        parts = Path(argument).parts
        if Path(argument).is_absolute() or ".." in parts:
            return f"{argument!r}: a command names files inside the project's folder (no absolute path, no '..')"
        named = folder / argument
        try:
            present = bool(parts) and (named.is_symlink() or named.exists())
            outside = present and not named.resolve().is_relative_to(root)
        except (OSError, ValueError) as error:  # a name too long for the file system, a NUL byte
            return f"{argument[:80]!r}... is not a usable file name ({type(error).__name__}: {str(error)[:80]})"
        if outside:
            return f"{argument!r} leads out of the project's folder (a link); copy the file into the folder"
    return None


def load_project(path: str | Path) -> Project:
    """A project from its folder or its project.yaml, or a ProjectError naming file and field."""
    path = Path(path)
    if path.is_dir():
        path = path / PROJECT_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ProjectError(f"{path}: no such project file; create one with `algo-platform project new NAME`") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ProjectError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    project = parse_project(document, str(path))
    for where, family in [("model.family", project.model.family)] + [
        (f"tasks.{task.name}.model.family", task.family) for task in project.tasks
    ]:
        file = family.split(":", 1)[0]
        if not (file.endswith(".py") and ":" in family):
            continue
        try:
            project_file_spec(family, path.parent)
        except ContractViolation:
            raise ProjectError(f"{path}: {where}: {family!r} is not a file inside the project's folder") from None
        if not (path.parent / file).is_file():
            raise ProjectError(f"{path}: {where}: {family!r}, but {path.parent / file} does not exist")
        defined = top_level_names(path.parent / file)
        name = family.split(":", 1)[1]
        if name not in defined:
            close = difflib.get_close_matches(name, defined, n=1)
            raise ProjectError(
                f"{path}: {where}: {family!r}, but {file} defines no {name!r}"
                + (f"; did you mean {close[0]!r}?" if close else f" (it defines {', '.join(defined) or 'nothing'})")
            )
    if is_file_spec(project.model.family) and not project.model.command:
        _check_family_settings(path, project.model)
    # A command in its own image names that image's files; one run locally names the folder's.
    commands = [("model.command", project.model.command, project.model.image)]
    commands += [(f"tasks.{task.name}.command", task.command, task.image) for task in project.tasks]
    for where, command, image in commands:
        refusal = None if image else command_refusal(command or [], path.parent)
        if refusal:
            raise ProjectError(f"{path}: {where}: {refusal}")
    if path.parent.name != project.name and path.parent.name != "":
        raise ProjectError(
            f"{path}: name {project.name!r} differs from its folder {path.parent.name!r}; rename one of them"
        )
    return project
