"""What a training leaves behind, and how it is read back: the checkpoint a retry resumes, the
model file evaluation and serving load (tensors and plain values only), and the vocabulary that
maps model indices to item ids. Imports no training loop, so a reader of models loads only this.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from algo_platform.models import NextItemModel, model_from_state
from algo_platform.training.storage import read_bytes, write_bytes_atomically

CHECKPOINT_NAME = "checkpoint.pt"


MODEL_NAME = "model.pt"


def read_item_ids(uri: str) -> np.ndarray:
    """Item id of every model index (index 0, padding, gets -1): the model's vocabulary."""
    vocabulary = pq.read_table(pa.BufferReader(read_bytes(uri)), columns=["item_index", "item_id"])
    index = vocabulary.column("item_index").to_numpy()
    item_ids = np.full(int(index.max(initial=0)) + 1, -1, dtype=np.int64)
    item_ids[index] = vocabulary.column("item_id").to_numpy()
    return item_ids


def save_checkpoint(uri: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomically(uri, buffer.getvalue())


class UnsafeCheckpoint(ValueError):
    """A checkpoint holding more than tensors and plain values: it is not loaded."""


def load_checkpoint(uri: str, device: torch.device) -> dict[str, Any]:
    """Tensors and plain Python values only (`weights_only=True`): checkpoints come from shared
    storage, and unpickling arbitrary objects from there would run whatever code they name."""
    try:
        return torch.load(io.BytesIO(read_bytes(uri)), map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"{uri}: refused, it holds objects other than tensors and plain values "
            f"({str(error).splitlines()[0][:200]}); only checkpoints written by this trainer load"
        ) from None


def load_model(uri: str, device: torch.device, family: str | None = None) -> NextItemModel:
    """Load a trained model written by `train`, whatever its family (used by evaluation and serving);
    `family` replaces the one the checkpoint names (a team class's copy in a registered model)."""
    return model_from_state(load_checkpoint(uri, device), device, family)
