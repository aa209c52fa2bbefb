"""The optimizer's setup: which parameters decay, and the learning-rate schedule (linear warmup,
then cosine decay to zero)."""

from __future__ import annotations

import math
from typing import Any

import torch

from algo_platform.models.sharded_table import RowShardedItemTable


def lr_lambda(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: biases, norms and embeddings are not decayed (as nanoGPT
    and the SASRec reference implementations do); decaying item embeddings shrinks rare items."""
    decayed, plain = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            is_matrix = parameter.dim() >= 2 and name.startswith("weight")
            exempt = isinstance(module, (torch.nn.Embedding, RowShardedItemTable, torch.nn.LayerNorm))
            (decayed if is_matrix and not exempt else plain).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
