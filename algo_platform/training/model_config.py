"""The model's shape from the trainer's hyper-parameters."""

from __future__ import annotations

import json

from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.models import ModelConfig

# Above this many items the loss samples negatives unless `negatives` says otherwise.
SAMPLED_SOFTMAX_ABOVE, AUTO_NEGATIVES = 200_000, 1024


def model_config_of(config: TrainConfig, num_items: int) -> ModelConfig:
    """The model's shape from the trainer's hyper-parameters (`negatives` -1 resolved by catalogue size)."""
    negatives = config.negatives
    if negatives < 0:
        negatives = AUTO_NEGATIVES if num_items - 1 > SAMPLED_SOFTMAX_ABOVE else 0
    return ModelConfig(
        num_items, config.max_len, config.hidden_dim, config.num_layers, config.num_heads, config.dropout, config.model,
        config.ease_l2, config.knn_neighbours, config.knn_shrink, json.loads(config.family_settings),
        negatives=negatives, recency_decay=config.recency_decay,
    )  # fmt: skip
