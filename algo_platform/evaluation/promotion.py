"""When a newly trained model may replace the champion: a pure function, so it is easy to test."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

GATE_METRIC = "ndcg@10"


@dataclass(frozen=True)
class PromotionPolicy:
    """A task type's promotion rule: its primary metric (higher is better), the candidate's and the
    first model's baseline scorer, and the thresholds from project.yaml."""

    margin: float = 0.01  # the new model must beat the champion's metric by this relative margin
    segment_tolerance: float = 0.05  # no segment may lose more than this share of its metric
    min_segment_users: int = 50  # segments smaller than this are too noisy to veto
    metric: str = GATE_METRIC
    candidate: str = "sequence_model"
    baseline: str = "popularity"


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def promotion_decision(overall: pd.DataFrame, segments: pd.DataFrame, policy: PromotionPolicy) -> Decision:
    """`overall`: one row per scorer (the candidate, its baseline, champion?) with metric columns.
    `segments`: rows per (segment, value, scorer) with `users` and metric columns."""
    metric, candidate = policy.metric, policy.candidate
    scores = overall.set_index("scorer")[metric]
    new = float(scores[candidate])
    if "champion" not in scores.index:
        baseline = float(scores[policy.baseline])
        if new > baseline:
            return Decision(True, [f"first model: {metric} {new:.4f} beats {policy.baseline} {baseline:.4f}"])
        return Decision(False, [f"first model: {metric} {new:.4f} does not beat {policy.baseline} {baseline:.4f}"])

    champion = float(scores["champion"])
    needed = champion * (1 + policy.margin)
    reasons = []
    promote = new >= needed
    reasons.append(f"{metric} {new:.4f} vs champion {champion:.4f} (needs >= {needed:.4f}, margin {policy.margin:.1%})")
    pivot = segments.pivot_table(index=["segment", "value"], columns="scorer", values=metric)
    users = segments[segments["scorer"] == candidate].set_index(["segment", "value"])["users"]
    for (segment, value), row in pivot.iterrows():
        if users.get((segment, value), 0) < policy.min_segment_users or pd.isna(row.get("champion")):
            continue
        floor = row["champion"] * (1 - policy.segment_tolerance)
        if row[candidate] < floor:
            promote = False
            reasons.append(
                f"segment {segment}={value} ({int(users[(segment, value)]):,} users) drops to {row[candidate]:.4f} "
                f"from {row['champion']:.4f} (more than {policy.segment_tolerance:.0%})"
            )
    return Decision(promote, reasons)
