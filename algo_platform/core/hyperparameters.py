"""Trainer hyper-parameters: the one place they are declared.

The trainer's command line (`python -m algo_platform.training --help`), the launchpad config of the
model asset and the parameters logged to MLflow are all built from these fields and their help.
Imports nothing heavy, so Dagster can read the defaults without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _param(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    model: str = _param(
        "sasrec",
        "model family: sasrec (causal Transformer) | gru4rec (recurrent) | a team's <file>.py:<Class> or entry point",
    )
    epochs: int = _param(10, "passes over the training windows")
    batch_size: int = _param(128, "training windows per optimizer step")
    max_len: int = _param(50, "items of history the model sees (longer histories keep their last items)")
    hidden_dim: int = _param(64, "embedding and Transformer width")
    num_layers: int = _param(2, "Transformer blocks")
    num_heads: int = _param(2, "attention heads per block (must divide hidden_dim)")
    dropout: float = _param(0.2, "dropout on embeddings and in every block")
    learning_rate: float = _param(3e-3, "peak AdamW learning rate")
    weight_decay: float = _param(0.01, "AdamW weight decay")
    warmup_fraction: float = _param(0.05, "share of steps with linear warm-up before cosine decay")
    grad_clip: float = _param(1.0, "gradient norm clipping threshold")
    patience: int = _param(
        3,
        "early stopping: stop after this many epochs without a better validation NDCG@eval_k (each user's "
        "last training item held out) and keep the best epoch's weights; 0 trains every epoch",
    )
    seed: int = _param(0, "seed for initialisation and batch order (a resumed run sees the same batches)")
    device: str = _param("auto", "auto | cpu | cuda")
    precision: str = _param("bf16", "bf16 | fp32: number format of the training step on CUDA (CPU trains in fp32)")
    compile: bool = _param(False, "torch.compile the model (worth it on GPUs for long runs)")
    eval_k: int = _param(10, "cut-off K of the hold-out HR@K and NDCG@K the trainer reports")
    checkpoint_every: int = _param(200, "optimizer steps between checkpoints (and one at every epoch end)")


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
