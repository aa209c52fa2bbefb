"""The engagement features' names and order: shared by the examples (polars), the trainer process and
the scorers; numpy only, so the trainer image needs nothing more."""

from __future__ import annotations

import numpy as np

FEATURES: tuple[str, ...] = (
    "user_log_impressions",
    "user_rate",
    "user_watch_ratio",
    "item_log_impressions",
    "item_rate",
    "item_watch_ratio",
    "user_topic_log_impressions",
    "user_topic_rate",
    "user_topic_share",
    "hour_sin",
    "hour_cos",
)


def feature_matrix(frame) -> np.ndarray:
    """The FEATURES columns of a pandas or polars frame as a float32 matrix."""
    return np.column_stack([np.asarray(frame[name], dtype=np.float32) for name in FEATURES])
