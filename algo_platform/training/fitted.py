"""Families fitted in closed form (item-kNN, EASE, a team's FittedNextItemModel): probed like any
family, fitted once on every training interaction, with the recency decay chosen on validation."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from algo_platform.core.families import ContractViolation, resolve_family
from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.models import FAMILIES, FittedNextItemModel, NextItemModel, build_model, check_next_item_contract
from algo_platform.training.data import holdout_windows, validation_split
from algo_platform.training.metrics import evaluate
from algo_platform.training.model_config import model_config_of
from algo_platform.training.runtime import ContractRefused, Reporter, resolve_device


def is_fitted_family(config: TrainConfig) -> bool:
    """Whether the family is fitted in closed form (models/fitted.py) rather than by gradient steps."""
    try:
        family = resolve_family(config.model, FAMILIES, NextItemModel)
    except ContractViolation as error:
        raise ContractRefused(f"--model {config.model}: {error}") from None
    return issubclass(family, FittedNextItemModel)


def fit_in_closed_form(
    config: TrainConfig, data: Any, num_items: int, reporter: Reporter, source: str
) -> tuple[NextItemModel, torch.device]:
    """A fitted family (item-kNN, EASE, a team's FittedNextItemModel): probed like any family, then
    fitted once on every training interaction; nothing to resume. With `recency_decay` -1 the decay
    is the one that ranks each user's last training item best, fitted without it (as early
    stopping is chosen for the gradient families: the evaluated day is never looked at)."""
    device = resolve_device(config.device)
    try:
        model = build_model(model_config_of(config, num_items)).to(device)
        check_next_item_contract(model, device)
    except ValueError as error:
        raise ContractRefused(f"--model {config.model}: {error}") from None
    history = data.history
    if interactions_of(history, num_items, device) is None:
        raise SystemExit(f"{source}: no interactions in the training window; nothing to fit")
    if config.recency_decay < 0:
        model.config.recency_decay = chosen_recency_decay(model, history, num_items, device, config, reporter)
    interactions = interactions_of(history, num_items, device)
    started = time.perf_counter()
    with torch.no_grad():
        model.fit_interactions(interactions)
    reporter.info(
        f"fitted {config.model} on {device}: {interactions._nnz():,} interactions of {len(history.lengths):,} "
        f"users, {num_items - 1:,} items, recency decay {model.config.recency_decay:g}, "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return model.eval(), device


# The decays `recency_decay: -1` chooses among, by validation (1.0: every history item alike).
RECENCY_DECAYS = (1.0, 0.9, 0.7, 0.5, 0.3)


def chosen_recency_decay(
    model: NextItemModel, history: Any, num_items: int, device: torch.device, config: TrainConfig, reporter: Reporter
) -> float:
    train_history, validation_data = validation_split(history)
    validation = holdout_windows(validation_data, config.max_len)
    interactions = interactions_of(train_history, num_items, device)
    if interactions is None or not (validation.targets >= 0).any():
        return 1.0
    with torch.no_grad():
        model.fit_interactions(interactions)
    figures = {}
    for decay in RECENCY_DECAYS:
        model.config.recency_decay = decay
        figures[decay] = evaluate(model, validation.inputs, validation.targets, device, config.eval_k)[
            f"ndcg@{config.eval_k}"
        ]
    best = max(figures, key=figures.get)
    reporter.info(
        f"recency decay {best:g} chosen on each user's last training item: validation NDCG@{config.eval_k} "
        + ", ".join(f"{decay:g}: {value:.4f}" for decay, value in figures.items())
    )
    return best


def interactions_of(history: Any, num_items: int, device: torch.device) -> torch.Tensor | None:
    """The (users, num_items) 0/1 matrix of the histories, sparse (None when empty): each (user, item)
    once, since a user who came back to an item interacted with it, no more."""
    pairs = np.unique(np.repeat(np.arange(len(history.lengths)), history.lengths) * num_items + history.values)
    if len(pairs) == 0:
        return None
    indices = torch.as_tensor(np.stack([pairs // num_items, pairs % num_items]), dtype=torch.long)
    shape = (len(history.lengths), num_items)
    interactions = torch.sparse_coo_tensor(indices, torch.ones(len(pairs)), shape, check_invariants=True)
    return interactions.coalesce().to(device)
