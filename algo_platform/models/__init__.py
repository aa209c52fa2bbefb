"""Model families behind one interface per task type, and the registry that builds, saves and loads them.

- next-item (`base.py`): SASRec, GRU4Rec, HSTU (`hstu.py`), the fitted item-kNN and EASE (`fitted.py`), or a team's
  `NextItemModel` (or `FittedNextItemModel`) subclass; a trained one may be blended with a fitted one (`blend.py`);
- engagement (`engagement.py`): the MLP, or a team's `EngagementModel` subclass.

A team's class is named in project.yaml (`algo_platform/core/families.py` says how). Imports torch only (the trainer
image holds this package next to `algo_platform/training`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from algo_platform.core.families import ContractViolation, resolve_family
from algo_platform.models.base import PAD, ModelConfig, NextItemModel
from algo_platform.models.blend import BlendedNextItemModel
from algo_platform.models.engagement import ENGAGEMENT_FAMILIES, EngagementConfig, EngagementModel
from algo_platform.models.fitted import EASE, FittedNextItemModel, ItemKNN
from algo_platform.models.gru4rec import GRU4Rec
from algo_platform.models.hstu import HSTU
from algo_platform.models.sasrec import SASRec

FAMILIES: dict[str, type[NextItemModel]] = {family.family: family for family in (SASRec, GRU4Rec, HSTU, ItemKNN, EASE)}

__all__ = [
    "ENGAGEMENT_FAMILIES",
    "FAMILIES",
    "PAD",
    "EASE",
    "BlendedNextItemModel",
    "ContractViolation",
    "FittedNextItemModel",
    "ItemKNN",
    "EngagementConfig",
    "EngagementModel",
    "GRU4Rec",
    "HSTU",
    "ModelConfig",
    "NextItemModel",
    "SASRec",
    "build_engagement_model",
    "build_model",
    "check_next_item_contract",
    "model_state",
]


def build_model(config: ModelConfig) -> NextItemModel:
    """The family's model; a team class sees its declared `settings` with the project's values over them."""
    try:
        family = resolve_family(config.family, FAMILIES, NextItemModel)
    except ContractViolation as error:
        raise ValueError(str(error)) from None
    return family(replace(config, settings={**getattr(family, "settings", {}), **config.settings}))


def build_engagement_model(config: EngagementConfig) -> EngagementModel:
    return resolve_family(config.family, ENGAGEMENT_FAMILIES, EngagementModel)(config)


def check_next_item_contract(model: NextItemModel, device: torch.device, batch: int = 4) -> None:
    """Probe a next-item model on a small batch before training on it: a team's class that returns
    the wrong shapes or a loss that is not a finite scalar is refused with the rule it breaks."""
    config = model.config
    items = torch.randint(1, config.num_items, (batch, min(config.max_len, 8)), device=device)
    name = type(model).__name__
    with torch.no_grad():
        hidden = model(items)
        if hidden.dim() != 3 or hidden.shape[:2] != items.shape:
            raise ContractViolation(
                "hidden states per position",
                f"{name}(items) returned shape {tuple(hidden.shape)}, expected (batch, length, dim) = "
                f"({batch}, {items.shape[1]}, dim)",
            )
        scores = model.item_scores(hidden[:, -1])
        if tuple(scores.shape) != (batch, config.num_items):
            raise ContractViolation(
                "scores every item",
                f"{name}.item_scores returned shape {tuple(scores.shape)}, expected (batch, num_items) = "
                f"({batch}, {config.num_items})",
            )
        loss = model(items[:, :-1], items[:, 1:])
        if loss.dim() != 0 or not torch.isfinite(loss):
            raise ContractViolation(
                "loss is a finite scalar", f"{name}(items, targets) returned {tuple(loss.shape)} {loss.flatten()[:3]}"
            )


def model_state(model: NextItemModel | EngagementModel) -> dict[str, Any]:
    """What a checkpoint stores to rebuild `model`: its config (with the family) and its weights."""
    return {"model_config": model.config.to_dict(), "model_state": model.state_dict()}


def model_from_state(state: dict[str, Any], device: torch.device, family: str | None = None) -> NextItemModel:
    """The model saved by `model_state`, on `device`, in eval mode. A checkpoint from before
    families existed has no family in its config: it is a SASRec. `family` replaces the family the
    checkpoint names (a team's class loaded from the copy a registered model carries)."""
    config = ModelConfig(**state["model_config"])
    config = replace(config, family=family) if family else config
    model = (BlendedNextItemModel.of(config, build_model) if config.blend_with else build_model(config)).to(device)
    model.load_state_dict(state["model_state"])
    return model.eval()


def engagement_model_from_state(state: dict[str, Any], device: torch.device) -> EngagementModel:
    model = build_engagement_model(EngagementConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model_state"])
    return model.eval()
