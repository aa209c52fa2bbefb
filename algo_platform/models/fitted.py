"""Next-item families fitted in closed form on the training interactions: no gradient steps.

The field's strong simple baselines, behind the same interface as SASRec and GRU4Rec: a user's
state is the multi-hot vector of the items in their sequence, and the scores are that vector times
an item-item matrix the family fits once (`fit_interactions`), kept as a buffer so the checkpoint
holds it like any weights.

- `ItemKNN`: cosine similarity of items over users (Sarwar et al., 2001), each item's `neighbours`
  most similar items kept, shrunk towards zero for items few users share.
- `EASE`: the embarrassingly shallow autoencoder (Steck, 2019): the item-item weights that best
  reconstruct each user's items from their other items, L2-regularised, in closed form.

A team's class may subclass `FittedNextItemModel` (its own `fit_interactions`), so a family need
not be a gradient model. The item-item matrix is dense: memory grows with the catalogue squared
(a 20,000-item catalogue needs 1.6 GB), fine for catalogues of tens of thousands of items.
"""

from __future__ import annotations

import torch

from algo_platform.models.base import PAD, ModelConfig, NextItemModel

MAX_FITTED_ITEMS = 50_000  # beyond this a dense item-item matrix (10 GB) is not what a team wants


class FittedNextItemModel(NextItemModel):
    """A family whose weights come from `fit_interactions`, not from an optimizer."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.num_items > MAX_FITTED_ITEMS:
            raise ValueError(
                f"{type(self).__name__} keeps a dense item-item matrix: {config.num_items - 1:,} items is more than "
                f"{MAX_FITTED_ITEMS - 1:,}; use sasrec or gru4rec for a catalogue this large"
            )
        self.config = config
        self.register_buffer("weights", torch.zeros(config.num_items, config.num_items))

    def fit_interactions(self, interactions: torch.Tensor) -> None:
        """Fit on the training interactions: a (users, num_items) 0/1 matrix, column 0 padding."""
        raise NotImplementedError

    def forward(self, items: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """The state at each position: every item seen so far, weighted `recency_decay` ** (steps since
        it was last seen); 1.0 weighs them all alike (the left padding counts for nothing)."""
        decay = self.config.recency_decay
        batch, length = items.shape
        hidden = torch.zeros(batch, length, self.config.num_items, device=items.device)
        state = torch.zeros(batch, self.config.num_items, device=items.device)
        for position in range(length):
            state.mul_(decay).scatter_(1, items[:, position : position + 1], 1.0)
            state[:, PAD] = 0.0
            hidden[:, position] = state
        return hidden if targets is None else self.next_item_loss(hidden, items, targets)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.to(self.weights.dtype) @ self.weights


def _item_counts_and_gram(interactions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dense = interactions.to_dense() if interactions.is_sparse else interactions
    dense = dense.float()
    return dense.sum(dim=0), dense.T @ dense


class ItemKNN(FittedNextItemModel):
    family = "itemknn"

    def fit_interactions(self, interactions: torch.Tensor) -> None:
        counts, gram = _item_counts_and_gram(interactions)
        norms = counts.sqrt()
        similarity = gram / (norms[:, None] * norms[None, :] + self.config.knn_shrink)
        similarity.fill_diagonal_(0.0)
        similarity[PAD] = 0.0
        similarity[:, PAD] = 0.0
        keep = min(self.config.knn_neighbours, similarity.shape[1])
        top = similarity.topk(keep, dim=1)
        self.weights.zero_().scatter_(1, top.indices, top.values)


class EASE(FittedNextItemModel):
    family = "ease"

    def fit_interactions(self, interactions: torch.Tensor) -> None:
        _, gram = _item_counts_and_gram(interactions)
        gram = gram.double()
        gram.diagonal().add_(self.config.ease_l2)
        precision = torch.linalg.inv(gram)
        weights = -precision / precision.diagonal()[None, :]
        weights.fill_diagonal_(0.0)
        weights[PAD] = 0.0
        weights[:, PAD] = 0.0
        self.weights.copy_(weights.float())


FITTED_FAMILIES: dict[str, type[NextItemModel]] = {family.family: family for family in (ItemKNN, EASE)}

__all__ = ["EASE", "FITTED_FAMILIES", "FittedNextItemModel", "ItemKNN"]
