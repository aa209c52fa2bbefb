"""Two stages: the next-item champion proposes candidates, the engagement model re-ranks them.

Each candidate's final score is log P(next item) from the retrieval model plus log P(engage | shown)
from the engagement model: the chance the user plays it and engages with it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from algo_platform.tasks.engagement.evaluate import ndcg_at


def retrieve(loaded, windows: np.ndarray, candidates: int, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The retrieval model's top `candidates` item ids after each window, with their log-probabilities.

    `loaded` is an `evaluation.scoring.LoadedModel`; `windows` are in its own vocabulary."""
    import torch

    from algo_platform.evaluation.scoring import fit_length

    windows = fit_length(windows, loaded.max_len, 0)
    items, log_probs = [], []
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = torch.as_tensor(windows[start : start + batch_size], device=loaded.device)
            scores = loaded.model.item_scores(loaded.model(batch)[:, -1]).float()
            scores[:, 0] = float("-inf")
            best = torch.log_softmax(scores, dim=1).topk(min(candidates, scores.shape[1] - 1), dim=1)
            items.append(loaded.item_ids[best.indices.cpu().numpy()])
            log_probs.append(best.values.cpu().numpy())
    if not items:
        return np.zeros((0, candidates), dtype=np.int64), np.zeros((0, candidates), dtype=np.float32)
    return np.concatenate(items), np.concatenate(log_probs)


def rank_candidates(
    users: np.ndarray,
    candidates: np.ndarray,
    log_probs: np.ndarray,
    hours: np.ndarray,
    probabilities_of: Callable[[pd.DataFrame], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates re-ranked per user, and each one's engagement probability in the new order.

    `probabilities_of` maps a frame of (user_id, item_id, hour) pairs to P(engage)."""
    width = candidates.shape[1]
    pairs = pd.DataFrame(
        {"user_id": np.repeat(users, width), "item_id": candidates.ravel(), "hour": np.repeat(hours, width)}
    )
    engagement = probabilities_of(pairs).reshape(candidates.shape)
    order = np.argsort(-(log_probs + np.log(np.clip(engagement, 1e-6, 1.0))), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(engagement, order, axis=1)


def two_stage_ndcg(
    relevant: list[set[int]], candidates: np.ndarray, reranked: np.ndarray, k: int = 10
) -> dict[str, float]:
    """NDCG@k of the retrieval order and of the re-ranked order against each user's engaged items,
    and how many of those items the candidates hold at all (the ceiling of any re-ranking)."""
    recall = [len(wanted & set(row.tolist())) / len(wanted) for wanted, row in zip(relevant, candidates, strict=True)]
    return {
        f"retrieval_ndcg@{k}": ndcg_at(relevant, candidates, k),
        f"two_stage_ndcg@{k}": ndcg_at(relevant, reranked, k),
        "candidate_recall": float(np.mean(recall)) if recall else float("nan"),
        "users": len(relevant),
    }


def champion_candidates(
    champion: dict, data, item_ids: np.ndarray, latest: bool, candidates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of the users in `data`, their candidates' item ids, log-probabilities) from the next-item
    champion, after each user's whole sequence (`latest`: serving) or their history before the
    held-out day. A team program's champion answers through its pyfunc; its scores are read as
    logits (log-softmax over its list)."""
    from algo_platform.evaluation.scoring import load_model, remap
    from algo_platform.training.data import full_sequences, history_windows, latest_windows

    if champion.get("model_format", "torch-state") == "mlflow":
        from algo_platform.evaluation.program import load_program

        sequences = full_sequences(data) if latest else data.history
        rows = np.flatnonzero(sequences.lengths > 0)
        offsets = sequences.offsets
        histories = [item_ids[sequences.values[offsets[r] : offsets[r + 1]]] for r in rows]
        listed, scores = load_program(champion["model_uri"]).top_k(data.user_ids[rows], histories, candidates)
        found = np.full((len(rows), candidates), -1, dtype=np.int64)
        log_probs = np.full((len(rows), candidates), -np.inf)
        for row, (items, values) in enumerate(zip(listed, scores, strict=True)):
            found[row, : len(items)] = items
            if len(values):
                shifted = values - values.max()
                log_probs[row, : len(values)] = shifted - np.log(np.exp(shifted).sum())
        return rows, found, log_probs
    retrieval = load_model(champion["model_uri"])
    windows, rows = (latest_windows if latest else history_windows)(data, retrieval.max_len)
    found, log_probs = retrieve(retrieval, remap(windows, item_ids, retrieval.item_ids), candidates)
    return rows, found, log_probs
