import io

import numpy as np
import pandas as pd
import pytest
import torch

from algo_platform.evaluation import report
from algo_platform.evaluation.promotion import PromotionPolicy, promotion_decision
from algo_platform.evaluation.scoring import popularity_ranks, remap
from algo_platform.training.metrics import ranking_metrics, target_ranks
from tests.support.factories import overall, segments


def test_ranking_metrics_against_hand_computed_values():
    ranks = torch.tensor([0, 3, 7, 25])  # 0-based: 1st, 4th, 8th and 26th place
    metrics = ranking_metrics(ranks, ks=(5, 10, 20))
    assert metrics["hr@5"] == pytest.approx(2 / 4)
    assert metrics["hr@10"] == pytest.approx(3 / 4) and metrics["hr@20"] == pytest.approx(3 / 4)
    assert metrics["ndcg@5"] == pytest.approx((1 + 1 / np.log2(5)) / 4)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / np.log2(5) + 1 / np.log2(9)) / 4)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 4 + 1 / 8 + 1 / 26) / 4)


def test_remap_translates_item_indices_between_vocabularies():
    today = np.array([-1, 100, 200, 300])  # index -> item id (0 is padding)
    champion = np.array([-1, 300, 100])  # the champion never saw item 200
    assert remap(np.array([[0, 1, 2, 3]]), today, champion).tolist() == [[0, 2, 0, 1]]


POLICY = PromotionPolicy(margin=0.01, segment_tolerance=0.05, min_segment_users=50)


def test_the_first_model_is_promoted_only_if_it_beats_popularity():
    assert promotion_decision(overall(0.30, 0.10), segments([]), POLICY).promote
    refused = promotion_decision(overall(0.08, 0.10), segments([]), POLICY)
    assert not refused.promote and "does not beat popularity" in refused.reasons[0]


def test_a_new_model_needs_the_margin_over_the_champion():
    assert promotion_decision(overall(0.510, 0.1, 0.50), segments([("ios", 500, 0.51, 0.50)]), POLICY).promote
    refused = promotion_decision(overall(0.504, 0.1, 0.50), segments([("ios", 500, 0.51, 0.50)]), POLICY)
    assert not refused.promote and "needs >= 0.5050" in refused.reasons[0]


def test_a_large_segment_that_drops_too_much_vetoes_promotion_but_a_small_one_does_not():
    drops = segments([("ios", 500, 0.60, 0.50), ("web", 400, 0.40, 0.50)])
    vetoed = promotion_decision(overall(0.55, 0.1, 0.50), drops, POLICY)
    assert not vetoed.promote and any("segment device=web (400 users)" in r for r in vetoed.reasons)
    small = segments([("ios", 500, 0.60, 0.50), ("web", 20, 0.40, 0.50)])
    assert promotion_decision(overall(0.55, 0.1, 0.50), small, POLICY).promote


def test_plots_are_real_images_and_the_html_report_contains_them():
    from PIL import Image

    table = pd.DataFrame(
        [
            {"scorer": "sequence_model", "hr@10": 0.7, "ndcg@10": 0.6},
            {"scorer": "popularity", "hr@10": 0.05, "ndcg@10": 0.02},
        ]
    )
    per_segment = segments([("ios", 100, 0.6, 0.5), ("web", 80, 0.5, 0.45)])
    images = {
        "loss": report.loss_curve([5.0, 3.0, 2.5]),
        "bars": report.metric_bars(table, ["hr@10", "ndcg@10"]),
        "segments": report.segment_bars(per_segment, "ndcg@10"),
    }
    for png in images.values():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    html = report.html_report("Evaluation", ["a line"], {"Overall": table}, images)
    assert html.count("data:image/png;base64,") == 3 and "<table" in html and "0.7" in html
    assert "![bars](data:image/png;base64," in report.markdown_images(images)


def test_popularity_ranks_equal_ranking_the_full_score_matrix():
    """The closed form used for popularity gives the ranks `target_ranks` gives on the full matrix
    (ties against the target, padding excluded, padding targets last)."""
    rng = np.random.default_rng(0)
    for items in (2, 7, 300):
        counts = rng.integers(0, 5, items)
        targets = rng.integers(-1, items, 500)
        wanted = torch.as_tensor(targets[targets >= 0])
        full = target_ranks(torch.as_tensor(counts, dtype=torch.float32).expand(len(wanted), -1), wanted)
        assert popularity_ranks(counts, targets).tolist() == full.tolist()
