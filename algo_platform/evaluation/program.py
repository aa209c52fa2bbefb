"""A team program's next-item recommender (an MLflow pyfunc, `model.command:`), as evaluation and
serving ask it: through the contract's frame (`user_id`, `item_ids` histories in raw ids) and
checked on every call; `probe` is the test it passes before it is registered
(`algo_platform.tasks.next_item` says what the program is given and must hand back)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from algo_platform.core.families import ContractViolation

# Every list the platform asks for holds at least this many items: evaluation reports HR/NDCG@20.
MIN_K = 20


@dataclass
class ProgramRecommender:
    """A team program's MLflow pyfunc, asked through the contract's frame and checked on every call."""

    model: Any  # mlflow.pyfunc.PyFuncModel

    def top_k(self, user_ids: np.ndarray, histories: Sequence[np.ndarray], k: int) -> tuple[list, list]:
        """Item ids and scores of each user's list, cut to `k`."""
        frame = pd.DataFrame({"user_id": np.asarray(user_ids), "item_ids": [[int(i) for i in h] for h in histories]})
        try:
            answer = self.model.predict(frame)
        except Exception as error:  # the program's own code: any exception is its defect
            raise ContractViolation(
                "predicts on the contract's frame",
                f"predict raised {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}",
            ) from None
        if not isinstance(answer, pd.DataFrame) or not {"item_ids", "scores"} <= set(answer.columns):
            shown = sorted(answer.columns) if isinstance(answer, pd.DataFrame) else type(answer).__name__
            raise ContractViolation(
                "answers item_ids and scores", f"predict returned {shown}; return a DataFrame with item_ids and scores"
            )
        if len(answer) != len(frame):
            raise ContractViolation("one list per user", f"predict returned {len(answer)} rows for {len(frame)} users")
        items = [np.asarray(row, dtype=np.int64)[:k] for row in answer["item_ids"]]
        scores = [np.asarray(row, dtype=np.float64)[:k] for row in answer["scores"]]
        return items, scores


def load_program(model_uri: str) -> ProgramRecommender:
    import mlflow.pyfunc

    return ProgramRecommender(mlflow.pyfunc.load_model(model_uri))


def probe(
    recommender: ProgramRecommender,
    user_ids: np.ndarray,
    histories: Sequence[np.ndarray],
    catalogue: np.ndarray,
    k: int,
    exclude_seen: bool,
) -> dict[str, float]:
    """Refuses (ContractViolation, naming the rule and a user it broke it for) a recommender whose
    lists are short, hold unknown or repeated items, already-seen items under `exclude_seen`, scores
    out of order, or change from one call to the next. Returns what it measured."""
    started = time.perf_counter()
    items, scores = recommender.top_k(user_ids, histories, k)
    seconds = time.perf_counter() - started
    known = set(catalogue.tolist())
    for user, history, listed, scored in zip(user_ids, histories, items, scores, strict=True):
        seen = set(history.tolist()) if exclude_seen else set()
        wanted = min(k, len(known - seen))
        if len(listed) < wanted or len(scored) != len(listed):
            raise ContractViolation(
                f"{k} items per list",
                f"user {user}: {len(listed)} items and {len(scored)} scores, where {wanted} were asked for",
            )
        unknown = set(listed.tolist()) - known
        if unknown:
            raise ContractViolation("items of the catalogue", f"user {user}: {sorted(unknown)[:5]} are not in it")
        if len(set(listed.tolist())) != len(listed):
            raise ContractViolation("each item once per list", f"user {user}: an item is listed twice")
        if seen & set(listed.tolist()):
            raise ContractViolation(
                "no already-seen items (exclude_seen)", f"user {user}: {sorted(seen & set(listed.tolist()))[:5]}"
            )
        if not np.isfinite(scored).all() or (np.diff(scored) > 0).any():
            raise ContractViolation("scores finite, best first", f"user {user}: scores {np.round(scored[:5], 4)} ...")
    again, _ = recommender.top_k(user_ids, histories, k)
    for user, first, second in zip(user_ids, items, again, strict=True):
        if not np.array_equal(first, second):
            raise ContractViolation("deterministic", f"user {user}: two calls on the same history gave other lists")
    return {
        "probe_users": len(user_ids),
        "probe_seconds_per_1000_users": round(seconds / max(len(user_ids), 1) * 1000, 4),
    }


def list_ranks(listed: Sequence[np.ndarray], targets: np.ndarray, miss: int) -> np.ndarray:
    """0-based rank of each target in its list, `miss` where the list does not hold it."""
    ranks = np.full(len(targets), miss, dtype=np.int64)
    for row, (items, target) in enumerate(zip(listed, targets, strict=True)):
        found = np.flatnonzero(items == target)
        if len(found):
            ranks[row] = found[0]
    return ranks
