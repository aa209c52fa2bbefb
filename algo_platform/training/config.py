"""Trainer hyper-parameters. Imports nothing heavy, so Dagster can read the defaults without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    max_len: int = 50
    hidden_dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    compile: bool = False
    eval_k: int = 10
    checkpoint_every: int = 200  # optimizer steps between checkpoints (and at every epoch end)
