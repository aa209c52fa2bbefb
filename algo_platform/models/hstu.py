"""HSTU (Zhai et al., "Actions Speak Louder than Words", ICML 2024): the generative recommender's
sequential transducer, as a next-item family beside SASRec.

Each block: one projection of the normalised input to U, V, Q, K through SiLU; pointwise aggregated
attention, SiLU(QK^T + relative position bias) divided by the (padded) sequence length instead of a
softmax (so an item's weight does not shrink as a user's history grows); the attended values normalised and
gated element-wise by U, then projected, as a residual. No feed-forward sublayer: the gate plays its
part. The paper's time bias needs each event's timestamp; this interface passes item indices only,
so the relative bias here is by position. Sizes come from `model:` (hidden_dim, num_layers,
num_heads), as SASRec's do.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from algo_platform.models.base import PAD, ModelConfig, NextItemModel, item_table


class HSTUBlock(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.hidden_dim % config.num_heads:
            raise ValueError(f"hidden_dim {config.hidden_dim} must be divisible by num_heads {config.num_heads}")
        self.num_heads = config.num_heads
        self.norm = nn.LayerNorm(config.hidden_dim)
        self.uvqk = nn.Linear(config.hidden_dim, 4 * config.hidden_dim)
        self.attention_norm = nn.LayerNorm(config.hidden_dim)
        self.out = nn.Linear(config.hidden_dim, config.hidden_dim)
        # One learned bias per head and relative distance (0 .. max_len - 1 positions back).
        self.relative_bias = nn.Parameter(torch.zeros(config.num_heads, config.max_len))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        heads, head_dim = self.num_heads, dim // self.num_heads
        u, v, q, k = F.silu(self.uvqk(self.norm(x))).split(dim, dim=2)
        q, k, v = (t.view(batch, length, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        positions = torch.arange(length, device=x.device)
        distance = (positions[:, None] - positions[None, :]).clamp(0, self.relative_bias.shape[1] - 1)
        scores = q @ k.transpose(-2, -1) + self.relative_bias[:, distance]
        weights = F.silu(scores) * allowed / length
        attended = (weights @ v).transpose(1, 2).reshape(batch, length, dim)
        return x + self.out(self.dropout(self.attention_norm(attended) * u))


class HSTU(NextItemModel):
    """Item embeddings, HSTU blocks with a relative position bias, scores tied to the item embeddings."""

    family = "hstu"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.item_embedding = item_table(config)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(HSTUBlock(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_dim)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, items: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """items: (batch, length) left-padded item indices -> hidden states (batch, length, dim);
        with `targets`, the mean cross-entropy of the next item over real pairs."""
        length = items.shape[1]
        real = items != PAD
        x = self.dropout(self.item_embedding(items) * math.sqrt(self.config.hidden_dim) * real.unsqueeze(-1))
        # Causal, over real items only: pointwise attention needs no "see yourself" guard (no softmax).
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        allowed = (causal & real[:, None, :]).unsqueeze(1)
        for block in self.blocks:
            x = block(x, allowed)
        hidden = self.ln_f(x)
        return hidden if targets is None else self.next_item_loss(hidden, items, targets)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding.weight.T

    def candidate_scores(self, hidden: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding(candidates).T
