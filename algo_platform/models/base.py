"""The interface every model family implements. The trainer, evaluation and recommendations use
only this, never a family's internals, so a team can bring another family by adding one module.

- build: `build_model(ModelConfig)` (the registry in `algo_platform.models`);
- train step: `model(items, targets)` is the mean cross-entropy of the next item at every real
  position of a batch of left-padded item sequences; the trainer owns the optimizer;
- score: `model.item_scores(model(items)[:, -1])`, or `model.score_next(items)`, scores every item
  of the vocabulary as each user's next one: (batch, num_items);
- save / load: `model_state(model)` and `model_from_state(state)`: tensors and plain values only,
  so checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

PAD = 0  # item index 0 is padding (and items unknown to the vocabulary)
# Most next-item scores (positions x catalogue) the training loss holds at once.
LOSS_CHUNK_SCORES = 2**28


@dataclass
class ModelConfig:
    num_items: int  # vocabulary size including the padding index 0
    max_len: int = 50
    hidden_dim: int = 64
    num_layers: int = 2
    num_heads: int = 2  # attention heads (SASRec); families without attention ignore it
    dropout: float = 0.2
    family: str = "sasrec"
    # The fitted families' settings (models/fitted.py); the others ignore them.
    ease_l2: float = 250.0
    knn_neighbours: int = 100
    knn_shrink: float = 10.0
    # A team family's own settings: its class's `settings` defaults, overridden by project.yaml.
    settings: dict = field(default_factory=dict)
    # The training loss: 0 is the full softmax over the catalogue; N > 0 samples (`sampled_next_item_loss`).
    negatives: int = 0
    recency_decay: float = 1.0  # the fitted families: a history item's weight, times this per step back
    # A trained family blended with a fitted one (models/blend.py): the fitted family, and the trained
    # model's share of the standardised scores.
    blend_with: str = ""
    blend_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class NextItemModel(nn.Module):
    """Base class of the families: left-padded item indices in, next-item scores out."""

    family: ClassVar[str]
    config: ModelConfig

    def forward(self, items: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, length) item indices -> hidden states (batch, length, dim); with `targets`
        (the next item at each position) -> the mean cross-entropy over real (input, target) pairs."""
        raise NotImplementedError

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the whole vocabulary for each hidden state: (..., dim) -> (..., num_items)."""
        raise NotImplementedError

    def candidate_scores(self, hidden: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of `candidates` (C,) item indices for each hidden state: (P, dim) -> (P, C). Families
        with an item table override it with a lookup; this fallback scores the whole catalogue."""
        return self.item_scores(hidden)[:, candidates]

    def next_item_loss(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss every family returns from `forward(items, targets)`: mean cross-entropy
        of the next item over positions whose input and target are both real items (nothing
        predicts a user's first item)."""
        scored = (targets != PAD) & (items != PAD)
        hidden, targets = hidden[scored].float(), targets[scored]
        if self.config.negatives > 0 and self.training:
            return sampled_next_item_loss(self, hidden, targets, self.config.negatives)
        rows = max(1, LOSS_CHUNK_SCORES // self.config.num_items)
        if len(hidden) <= rows:
            return F.cross_entropy(self.item_scores(hidden), targets)
        # Scores of every position against a large catalogue do not fit at once (positions x items,
        # in fp32 for the softmax): score a chunk of positions at a time and recompute each chunk's
        # scores in the backward pass instead of keeping them.
        total = sum(
            checkpoint(
                self._summed_loss, hidden[start : start + rows], targets[start : start + rows], use_reentrant=False
            )
            for start in range(0, len(hidden), rows)
        )
        return total / len(targets)

    def _summed_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.item_scores(hidden), targets, reduction="sum")

    def score_next(self, items: torch.Tensor) -> torch.Tensor:
        """Scores of every item as the next one after each sequence: (batch, num_items)."""
        return self.item_scores(self(items)[:, -1])


def item_table(config: ModelConfig) -> nn.Module:
    """A family's item embedding table: `nn.Embedding(num_items, hidden_dim)`, or split by rows across
    the ranks when the trainer builds the model for sharded training (models/sharded_table.py)."""
    from algo_platform.models.sharded_table import RowShardedItemTable, sharding_mesh

    mesh = sharding_mesh()
    if mesh is None:
        return nn.Embedding(config.num_items, config.hidden_dim, padding_idx=PAD)
    return RowShardedItemTable(config.num_items, config.hidden_dim, mesh)


def sampled_next_item_loss(
    model: NextItemModel, hidden: torch.Tensor, targets: torch.Tensor, negatives: int
) -> torch.Tensor:
    """Sampled softmax with mixed negatives and the logQ correction (Yi et al., RecSys 2019; Yang et
    al., WWW 2020): each position's target competes with the batch's targets (negatives drawn in
    proportion to their frequency, estimated from the batch) and `negatives` items drawn uniformly
    from the catalogue. Each distinct candidate's logit is corrected by log(times drawn / times
    expected), so the candidates' sum estimates the full softmax's normaliser: an item frequent in
    batches is not pushed down for every occurrence, a rare uniform draw stands for the many like it.
    A uniform draw of a position's own target merges with it rather than counting as its negative."""
    num_items = model.config.num_items
    uniform = torch.randint(1, num_items, (negatives,), device=targets.device)
    candidates, drawn = torch.cat([targets, uniform]).unique(return_counts=True)  # sorted
    in_batch, in_batch_counts = targets.unique(return_counts=True)
    expected = torch.full(candidates.shape, negatives / (num_items - 1), device=targets.device)
    expected[torch.searchsorted(candidates, in_batch)] += in_batch_counts.float()
    logits = model.candidate_scores(hidden, candidates).float() + torch.log(drawn.float() / expected)
    return F.cross_entropy(logits, torch.searchsorted(candidates, targets))
