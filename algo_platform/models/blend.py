"""A trained next-item model blended with a fitted one (item-kNN or EASE) as one model.

A sequence model and a neighbourhood model miss different items: the blend ranks by
`w * z(trained) + (1 - w) * z(fitted)`, each model's scores standardised over the catalogue at
every position, so neither one's scale decides. The trainer fits the partner and chooses `w` on
each user's last training item (`training/blending.py`); the blend is saved, registered and served
like any family, its config naming both families and the weight.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from algo_platform.models.base import PAD, ModelConfig, NextItemModel


def standardised(scores: torch.Tensor) -> torch.Tensor:
    """Scores centred and scaled per row over the catalogue, the padding index left out."""
    scores = scores.float()
    items = scores[..., PAD + 1 :]
    centred = (scores - items.mean(dim=-1, keepdim=True)) / (items.std(dim=-1, keepdim=True) + 1e-9)
    centred[..., PAD] = 0.0
    return centred


class BlendedNextItemModel(NextItemModel):
    """`trained` and `fitted` side by side: hidden states concatenated (the fitted family's state is
    one value per item, so it is the last `num_items` of them), scores blended by `blend_weight`."""

    family = "blend"

    def __init__(self, trained: NextItemModel, fitted: NextItemModel, weight: float):
        super().__init__()
        self.trained, self.fitted = trained, fitted
        self.config = replace(
            trained.config, blend_with=fitted.config.family, blend_weight=weight,
            recency_decay=fitted.config.recency_decay,
        )  # fmt: skip

    @classmethod
    def of(cls, config: ModelConfig, build) -> BlendedNextItemModel:
        """The blend `config` describes, with untrained parts (`build` is the family registry's builder)."""
        plain = replace(config, blend_with="", blend_weight=1.0)
        return cls(build(plain), build(replace(plain, family=config.blend_with)), config.blend_weight)

    def forward(self, items: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is not None:
            return self.trained(items, targets)
        hidden = self.trained(items)
        return torch.cat([hidden, self.fitted(items).to(hidden.dtype)], dim=-1)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        own, fitted = hidden[..., : -self.config.num_items], hidden[..., -self.config.num_items :]
        weight = self.config.blend_weight
        scores = weight * standardised(self.trained.item_scores(own))
        if weight < 1.0:
            scores = scores + (1.0 - weight) * standardised(self.fitted.item_scores(fitted))
        return scores
