"""The interface of engagement models: features of a (user, item, context) impression in, the logit
of the probability the user engages (likes, shares, completes: the project's label) out.

- build: `build_engagement_model(EngagementConfig)`; a team's class takes the same config;
- train step: `model(features)` gives logits (batch,); the trainer owns the loss (binary cross-entropy
  with logits) and the optimizer;
- save / load: tensors and plain values only (`model_state` / `engagement_model_from_state`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn as nn


@dataclass
class EngagementConfig:
    num_features: int
    hidden_dim: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    family: str = "mlp"

    def to_dict(self) -> dict:
        return asdict(self)


class EngagementModel(nn.Module):
    """Base class of engagement families: (batch, num_features) float features -> (batch,) logits."""

    family: ClassVar[str]
    config: EngagementConfig

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class EngagementMLP(EngagementModel):
    """Feed-forward network over standardised features: the platform's default engagement model."""

    family = "mlp"

    def __init__(self, config: EngagementConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.num_features
        for _ in range(config.num_layers):
            layers += [nn.Linear(width, config.hidden_dim), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden_dim
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


ENGAGEMENT_FAMILIES: dict[str, type[EngagementModel]] = {EngagementMLP.family: EngagementMLP}
