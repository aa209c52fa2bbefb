"""SASRec (Kang & McAuley, 2018): a causal Transformer for next-item prediction, in the style of nanoGPT."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from algo_platform.models.base import PAD, ModelConfig, NextItemModel, item_table


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.hidden_dim % config.num_heads:
            raise ValueError(f"hidden_dim {config.hidden_dim} must be divisible by num_heads {config.num_heads}")
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_dim, 3 * config.hidden_dim)
        self.proj = nn.Linear(config.hidden_dim, config.hidden_dim)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_dim)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.hidden_dim)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_dim, 4 * config.hidden_dim),
            nn.GELU(),
            nn.Linear(4 * config.hidden_dim, config.hidden_dim),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), allowed)
        return x + self.mlp(self.ln_2(x))


class SASRec(NextItemModel):
    """Item + position embeddings, causal Transformer blocks, scores tied to the item embeddings."""

    family = "sasrec"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.item_embedding = item_table(config)
        self.position_embedding = nn.Embedding(config.max_len, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_dim)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, items: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """items: (batch, length) left-padded item indices -> hidden states (batch, length, dim);
        with `targets` (the next item at each position), the mean cross-entropy over real pairs."""
        length = items.shape[1]
        positions = torch.arange(length, device=items.device)
        x = self.item_embedding(items) * math.sqrt(self.config.hidden_dim) + self.position_embedding(positions)
        x = self.dropout(x * (items != PAD).unsqueeze(-1))
        # Causal attention over real items; each position may always see itself, so a padded row
        # never has every key masked (which would make softmax NaN).
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        allowed = causal & (items != PAD)[:, None, :]
        allowed = (allowed | torch.eye(length, dtype=torch.bool, device=items.device)).unsqueeze(1)
        for block in self.blocks:
            x = block(x, allowed)
        hidden = self.ln_f(x)
        return hidden if targets is None else self.next_item_loss(hidden, items, targets)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the whole vocabulary for each hidden state: (..., dim) -> (..., num_items)."""
        return hidden @ self.item_embedding.weight.T

    def candidate_scores(self, hidden: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding(candidates).T
