"""Engagement probabilities from a trained model, whatever wrote it: the platform's weights-only
checkpoint (its families and team classes) or an MLflow model folder (a `command:` task)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algo_platform.core.families import ContractViolation
from algo_platform.tasks.engagement.features import FEATURES, feature_matrix


@dataclass
class EngagementScorer:
    model: Any
    model_format: str
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """P(engage) for every row of `frame` (which holds the FEATURES columns)."""
        if self.model_format == "mlflow":
            try:
                predicted = np.asarray(self.model.predict(pd.DataFrame({n: frame[n].to_numpy() for n in FEATURES})))
            except Exception as error:  # the program's own model: any exception is its defect
                first = str(error).splitlines()[0][:300] if str(error) else ""
                raise ContractViolation(
                    "predicts on the task's features",
                    f"predict on the {len(FEATURES)} columns {', '.join(FEATURES)} raised {type(error).__name__}: "
                    f"{first}",
                ) from None
            if predicted.ndim == 2 and predicted.shape[1] == 2:
                predicted = predicted[:, 1]  # predict_proba of a binary classifier
            return _checked(predicted.astype(np.float64), len(frame))
        import torch

        features = torch.as_tensor((feature_matrix(frame) - self.mean) / self.std)
        with torch.no_grad():
            return _checked(torch.sigmoid(self.model(features)).double().numpy(), len(frame))


def _checked(probabilities: np.ndarray, rows: int) -> np.ndarray:
    if probabilities.shape != (rows,):
        raise ContractViolation(
            "one probability per example", f"the model returned shape {probabilities.shape} for {rows} examples"
        )
    if len(probabilities) and (np.isnan(probabilities).any() or probabilities.min() < 0 or probabilities.max() > 1):
        raise ContractViolation("probabilities in [0, 1]", "the model returned values outside [0, 1] or NaN")
    return probabilities


def probe(scorer: EngagementScorer, examples: pd.DataFrame, rows: int = 1000) -> dict[str, float]:
    """Refuses (ContractViolation) a model that cannot score the task's features, answers outside
    [0, 1], or answers differently twice; returns the time per 1,000 rows. Run before registration."""
    import time

    sample = examples.head(rows)
    started = time.perf_counter()
    first = scorer.probabilities(sample)
    seconds = time.perf_counter() - started
    if not np.array_equal(first, scorer.probabilities(sample)):
        raise ContractViolation("deterministic", "two calls on the same examples gave other probabilities")
    return {"probe_rows": len(sample), "probe_seconds_per_1000_rows": round(seconds / max(len(sample), 1) * 1000, 4)}


def load_scorer(model_uri: str, model_format: str = "torch-state") -> EngagementScorer:
    if model_format == "mlflow":
        import mlflow.pyfunc

        return EngagementScorer(mlflow.pyfunc.load_model(model_uri), "mlflow")
    import torch

    from algo_platform.models import engagement_model_from_state
    from algo_platform.training.artifacts import load_checkpoint

    state = load_checkpoint(model_uri, torch.device("cpu"))
    if list(state.get("feature_names", [])) != list(FEATURES):
        raise ContractViolation(
            "features as trained", f"{model_uri} was trained on {state.get('feature_names')}, not {list(FEATURES)}"
        )
    model = engagement_model_from_state(state, torch.device("cpu"))
    return EngagementScorer(model, "torch-state", state["feature_mean"].numpy(), state["feature_std"].numpy())
