"""Model families behind one interface (`base.py`), and the registry that builds, saves and loads them.

Imports torch only (the trainer image holds this package next to `algo_platform/training`)."""

from __future__ import annotations

from typing import Any

import torch

from algo_platform.models.base import PAD, ModelConfig, NextItemModel
from algo_platform.models.gru4rec import GRU4Rec
from algo_platform.models.sasrec import SASRec

FAMILIES: dict[str, type[NextItemModel]] = {family.family: family for family in (SASRec, GRU4Rec)}

__all__ = ["FAMILIES", "PAD", "GRU4Rec", "ModelConfig", "NextItemModel", "SASRec", "build_model", "model_state"]


def build_model(config: ModelConfig) -> NextItemModel:
    if config.family not in FAMILIES:
        raise ValueError(f"model family {config.family!r} is unknown; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[config.family](config)


def model_state(model: NextItemModel) -> dict[str, Any]:
    """What a checkpoint stores to rebuild `model`: its config (with the family) and its weights."""
    return {"model_config": model.config.to_dict(), "model_state": model.state_dict()}


def model_from_state(state: dict[str, Any], device: torch.device) -> NextItemModel:
    """The model saved by `model_state`, on `device`, in eval mode. A checkpoint from before
    families existed has no family in its config: it is a SASRec."""
    model = build_model(ModelConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model_state"])
    return model.eval()
