"""The feed team's engagement model: a wide (linear) and a deep part over the platform's features.

It lives in the project's folder and is named in project.yaml as `models.py:WideAndDeep`: the
platform's trainer builds it with the task's `EngagementConfig` and trains it like its own families.
"""

import torch
import torch.nn as nn

from algo_platform.models import EngagementConfig, EngagementModel


class WideAndDeep(EngagementModel):
    family = "wide_and_deep"

    def __init__(self, config: EngagementConfig):
        super().__init__()
        self.config = config
        self.wide = nn.Linear(config.num_features, 1)
        self.deep = nn.Sequential(
            nn.Linear(config.num_features, config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, config.hidden_dim),
            nn.ReLU(),
            nn.Linear(config.hidden_dim, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (self.wide(features) + self.deep(features)).squeeze(-1)
