"""Trainer hyper-parameters: the one place they are declared.

The trainer's command line (`python -m algo_platform.training --help`), the launchpad config of the
model asset and the parameters logged to MLflow are all built from these fields and their help.
Imports nothing heavy, so Dagster can read the defaults without torch.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any


def _param(default: Any, help: str, bounds: tuple[float, float] | None = None, choices: tuple[Any, ...] = ()) -> Any:
    """A hyper-parameter: its default, its help, and what a launch may set it to (`bounds` for a
    number, `choices` otherwise); a field with neither is the project's alone (project.yaml), never
    a launch's: the model family, for one, decides which code the trainer imports."""
    return field(default=default, metadata={"help": help, "bounds": bounds, "choices": choices})


@dataclass
class TrainConfig:
    model: str = _param(
        "sasrec",
        "model family: sasrec (causal Transformer) | gru4rec (recurrent) | hstu (generative recommender's "
        "transducer) | itemknn | ease (fitted in closed "
        "form, no epochs) | a team's <file>.py:<Class> or entry point",
    )
    epochs: int = _param(10, "passes over the training windows", (1, 1000))
    batch_size: int = _param(
        128, "training windows per optimizer step, over all processes (each takes its share)", (1, 65536)
    )
    max_len: int = _param(50, "items of history the model sees (longer histories keep their last items)", (1, 4096))
    hidden_dim: int = _param(64, "embedding and Transformer width", (4, 8192))
    num_layers: int = _param(2, "Transformer blocks", (1, 64))
    num_heads: int = _param(2, "attention heads per block (must divide hidden_dim)", (1, 128))
    dropout: float = _param(0.2, "dropout on embeddings and in every block", (0.0, 0.9))
    learning_rate: float = _param(3e-3, "peak AdamW learning rate", (1e-6, 1.0))
    weight_decay: float = _param(0.01, "AdamW weight decay", (0.0, 1.0))
    warmup_fraction: float = _param(0.05, "share of steps with linear warm-up before cosine decay", (0.0, 0.5))
    grad_clip: float = _param(1.0, "gradient norm clipping threshold", (0.0, 100.0))
    patience: int = _param(
        3,
        "early stopping: stop after this many epochs without a better validation NDCG@eval_k (each user's "
        "last training item held out) and keep the best epoch's weights; 0 trains every epoch",
        (0, 1000),
    )
    seed: int = _param(
        0, "seed for initialisation and batch order (a resumed run sees the same batches)", (0, 2**31 - 1)
    )
    device: str = _param("auto", "auto | cpu | cuda", choices=("auto", "cpu", "cuda"))
    precision: str = _param(
        "bf16", "bf16 | fp32: number format of the training step on CUDA (CPU trains in fp32)", choices=("bf16", "fp32")
    )
    strategy: str = _param(
        "ddp",
        "ddp | fsdp: with several processes, replicate the model on each (DDP) or shard it (FSDP2, and the item "
        "table by rows when the loss is sampled); the project's compute.strategy",
        choices=("ddp", "fsdp"),
    )
    activation_checkpointing: bool = _param(
        False, "fsdp: recompute each block's activations in the backward pass (less memory, more compute)",
        choices=(True, False),
    )  # fmt: skip
    stream_row_groups: bool = _param(
        False,
        "read the training windows from the sequences file's row groups as each epoch reaches them (each process "
        "its share) instead of holding them all: for histories larger than memory",
        choices=(True, False),
    )
    compile: bool = _param(False, "torch.compile the model (worth it on GPUs for long runs)", choices=(True, False))
    eval_k: int = _param(10, "cut-off K of the hold-out HR@K and NDCG@K the trainer reports", (1, 1000))
    checkpoint_every: int = _param(200, "optimizer steps between checkpoints (and one at every epoch end)", (1, 10**6))
    negatives: int = _param(
        -1,
        "training loss: 0 scores the whole catalogue at every position (full softmax); N > 0 scores each position "
        "against the batch's targets and N uniform negatives, corrected by their sampling log-probability (logQ), "
        "for catalogues too large for a full softmax; -1: 1024 above 200,000 items, else full. Evaluation always "
        "ranks the whole catalogue",
        (-1, 1_000_000),
    )
    ease_l2: float = _param(250.0, "ease: L2 regularisation of the item-item weights", (1e-3, 1e7))
    knn_neighbours: int = _param(100, "itemknn: most similar items kept per item", (1, 100_000))
    knn_shrink: float = _param(10.0, "itemknn: similarity shrinkage for items few users share", (0.0, 1e6))
    recency_decay: float = _param(
        -1.0,
        "itemknn, ease: a history item's weight in the user's state, times this per item since (1.0: all "
        "alike; below 1 the recent items count most); -1: the one of 1, 0.9, 0.7, 0.5, 0.3 that best ranks "
        "each user's last training item",
        (-1.0, 1.0),
    )
    blend_with: str = _param(
        "",
        "a trained family: also fit this one (itemknn | ease) and rank by both, each one's scores standardised, "
        "the trained model's share the one of 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3 that best ranks each user's last "
        "training item",
        choices=("", "itemknn", "ease"),
    )
    family_settings: str = _param(
        "{}", "a team family's own settings as JSON: project.yaml's model keys its class declares in `settings`"
    )


@dataclass
class RecommendationSettings:
    """The recommendations asset's launch-time config."""

    top_k: int = _param(20, "items recommended to each user", (1, 1000))


# The config a launch may give each asset, by the asset's name (its op is `<project>__<name>`).
LAUNCH_CONFIG: dict[str, type] = {"sequence_model": TrainConfig, "user_recommendations": RecommendationSettings}


def launch_settable(config_class: type) -> list[Field]:
    """The fields of `config_class` a launch may set (the others are the project's)."""
    return [f for f in fields(config_class) if f.metadata["bounds"] or f.metadata["choices"]]


def launch_refusal(config_class: type, name: str, value: Any) -> str | None:
    """Why a launch may not set `name` to `value` (None when it may)."""
    found = {f.name: f for f in fields(config_class)}.get(name)
    if found is None:
        return f"{name} is not a setting of this asset"
    bounds, choices = found.metadata["bounds"], found.metadata["choices"]
    if not bounds and not choices:
        return f"{name} is the project's decision (project.yaml), not a launch-time setting"
    if choices:
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return None
        return f"{name}={value!r} is not one of {', '.join(map(repr, choices))}"
    low, high = bounds
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and (python_type(found.type) is float or isinstance(value, int)) and low <= value <= high:
        return None
    return f"{name}={value!r} is outside [{low:g}, {high:g}]"


def python_type(annotation: Any) -> type:
    """A field's type as a class (annotations are strings under `from __future__ import annotations`)."""
    return {"int": int, "float": float, "str": str, "bool": bool}[str(annotation)]


@dataclass
class EngagementHyperparameters:
    """The engagement task's `model:` section in project.yaml (every field optional): its trainer is
    `algo_platform.tasks.engagement.train`."""

    family: str = "mlp"
    epochs: int = 8
    batch_size: int = 1024
    hidden_dim: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 2
    seed: int = 0

    @classmethod
    def of(cls, values: dict[str, Any]) -> EngagementHyperparameters:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
