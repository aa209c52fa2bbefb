"""`blend_with`: the trained model blended with a fitted family, its share chosen on validation.

The fitted family is fitted without each user's last training item, the blend ranks that item
under each weight of `BLEND_WEIGHTS`, the best is kept (1.0, the trained model alone, among them),
and the fitted family is refitted on every interaction: the evaluated day is never looked at, as
early stopping and `recency_decay` are chosen."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.models import BlendedNextItemModel, NextItemModel, build_model
from algo_platform.training.data import holdout_windows, validation_split
from algo_platform.training.fitted import chosen_recency_decay, interactions_of
from algo_platform.training.metrics import evaluate
from algo_platform.training.runtime import Reporter

# The trained model's shares `blend_with` chooses among (1.0: the trained model alone).
BLEND_WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3)


def blended(
    model: NextItemModel, config: TrainConfig, history: Any, device: torch.device, reporter: Reporter
) -> NextItemModel:
    """`model` blended with a `config.blend_with` fitted on `history`, at the share validation chose."""
    num_items = model.config.num_items
    fitted = build_model(replace(model.config, family=config.blend_with, recency_decay=config.recency_decay)).to(device)
    if config.recency_decay < 0:
        fitted.config.recency_decay = chosen_recency_decay(fitted, history, num_items, device, config, reporter)
    train_history, validation_data = validation_split(history)
    validation = holdout_windows(validation_data, config.max_len)
    interactions = interactions_of(train_history, num_items, device)
    figures = {1.0: 0.0}
    if interactions is not None and (validation.targets >= 0).any():
        with torch.no_grad():
            fitted.fit_interactions(interactions)
        model.eval()
        for weight in BLEND_WEIGHTS:
            blend = BlendedNextItemModel(model, fitted, weight)
            figures[weight] = evaluate(blend, validation.inputs, validation.targets, device, config.eval_k)[
                f"ndcg@{config.eval_k}"
            ]
    weight = max(figures, key=figures.get)
    with torch.no_grad():
        fitted.fit_interactions(interactions_of(history, num_items, device))
    reporter.info(
        f"blended with {config.blend_with}: {model.config.family}'s share {weight:g}, chosen on each user's last "
        f"training item: validation NDCG@{config.eval_k} "
        + ", ".join(f"{share:g}: {value:.4f}" for share, value in figures.items())
    )
    return BlendedNextItemModel(model, fitted.eval(), weight)
