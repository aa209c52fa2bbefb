"""How well engagement probabilities predict: AUC, log-loss, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

CALIBRATION_BINS = 10
EPSILON = 1e-6


def calibration_table(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Predicted vs observed rate per equal-width probability bin (a reliability diagram's numbers)."""
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": which, "predicted": probabilities, "observed": labels})
    table = frame.groupby("bin").agg(
        examples=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean")
    )
    return table.reset_index()


def probability_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """AUC, log-loss, expected calibration error and mean prediction vs observed rate."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    both_classes = 0 < labels.sum() < len(labels)
    table = calibration_table(labels, probabilities)
    ece = float((table["examples"] * (table["predicted"] - table["observed"]).abs()).sum() / max(len(labels), 1))
    return {
        "auc": float(roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1])) if len(labels) else float("nan"),
        "ece": ece,
        "mean_predicted": float(probabilities.mean()) if len(labels) else float("nan"),
        "observed_rate": float(labels.mean()) if len(labels) else float("nan"),
        "examples": int(len(labels)),
    }
