"""Thresholds of the promotion gate, editable in the launchpad."""

import dagster as dg

from algo_platform.evaluation.promotion import PromotionPolicy


class PromotionGate(dg.ConfigurableResource):
    """Thresholds of the promotion gate (the rule: algo_platform/evaluation/promotion.py)."""

    margin: float = 0.01
    segment_tolerance: float = 0.05
    min_segment_users: int = 50

    def policy(self) -> PromotionPolicy:
        return PromotionPolicy(self.margin, self.segment_tolerance, self.min_segment_users)
