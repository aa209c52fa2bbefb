"""GRU4Rec: a recurrent next-item model (Hidasi et al., 2016), the same interface as SASRec.

A GRU reads the item sequence left to right; its state at each position scores every item, with
the output tied to the item embeddings. No attention and no position embeddings: the order lives
in the recurrence, so it is a structurally different family from SASRec's Transformer.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from algo_platform.models.base import ModelConfig, NextItemModel, item_table


class GRU4Rec(NextItemModel):
    family = "gru4rec"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.item_embedding = item_table(config)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            config.hidden_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.ln_f = nn.LayerNorm(config.hidden_dim)
        if isinstance(self.item_embedding, nn.Embedding):  # a row-sharded table draws its own rows
            nn.init.normal_(self.item_embedding.weight, mean=0.0, std=0.02)

    def forward(self, items: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        # Sequences are left-padded: the padding (a zero vector) comes first and the GRU reads
        # through it to the real items, so each position's state has seen only what came before.
        x = self.dropout(self.item_embedding(items))
        hidden = self.ln_f(self.gru(x)[0])
        return hidden if targets is None else self.next_item_loss(hidden, items, targets)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding.weight.T

    def candidate_scores(self, hidden: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding(candidates).T
