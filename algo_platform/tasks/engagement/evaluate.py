"""The engagement task's evaluator: AUC, log-loss and calibration on the held-out day, for the new
model, the champion and two well-known baselines (the item's historical engagement rate, and a
logistic regression on the same features, from scikit-learn), overall and for new vs returning users;
and the two-stage measure: the next-item champion's top 100 re-ranked with the engagement model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from algo_platform.tasks.engagement.features import feature_matrix
from algo_platform.tasks.engagement.metrics import probability_metrics
from algo_platform.tasks.engagement.scorer import EngagementScorer

CANDIDATE = "engagement_model"
BASELINES = ("item_rate", "logistic_regression")
HEADLINE = ("auc", "log_loss", "ece", "mean_predicted", "observed_rate")


def logistic_regression(examples: pd.DataFrame):
    train = examples[examples["split"] == "train"]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        feature_matrix(train), train["label"].to_numpy()
    )


def holdout_probabilities(
    examples: pd.DataFrame, model: EngagementScorer, champion: EngagementScorer | None
) -> pd.DataFrame:
    """Each held-out impression with its label, its segment and every scorer's probability."""
    holdout = examples[examples["split"] == "holdout"].reset_index(drop=True)
    scored = pd.DataFrame(
        {
            "user_id": holdout["user_id"],
            "label": holdout["label"].astype(np.int64),
            "user_type": np.where(holdout["user_log_impressions"] > 0, "returning", "new"),
            CANDIDATE: model.probabilities(holdout),
            "item_rate": holdout["item_rate"].astype(np.float64),
            "logistic_regression": logistic_regression(examples).predict_proba(feature_matrix(holdout))[:, 1],
        }
    )
    if champion is not None:
        scored["champion"] = champion.probabilities(holdout)
    return scored


def summarise(scored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overall metrics per scorer, and per (segment, value, scorer) with user counts."""
    scorers = [name for name in (CANDIDATE, "champion", *BASELINES) if name in scored.columns]
    overall = pd.DataFrame([{"scorer": s, **probability_metrics(scored["label"], scored[s])} for s in scorers])
    rows = []
    for value, group in scored.groupby("user_type"):
        for scorer in scorers:
            metrics = probability_metrics(group["label"], group[scorer])
            rows.append(
                {
                    "segment": "user_type",
                    "value": value,
                    "scorer": scorer,
                    "users": group["user_id"].nunique(),
                    **metrics,
                }
            )
    return overall, pd.DataFrame(rows)


def ndcg_at(relevant: list[set[int]], ranked: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of ranked item lists against each row's set of relevant items (binary gains)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for wanted, items in zip(relevant, ranked, strict=True):
        gains = np.array([item in wanted for item in items[:k]], dtype=np.float64)
        ideal = discounts[: min(len(wanted), k)].sum()
        scores.append(float((gains * discounts[: len(gains)]).sum() / ideal) if ideal else 0.0)
    return float(np.mean(scores)) if scores else float("nan")
