"""Scoring with trained models: ranks of held-out items (evaluation) and top-K lists (serving).

torch is imported inside the functions: loading the code location must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

KS = (5, 10, 20)
COVERAGE_K = 10


@dataclass
class LoadedModel:
    model: Any  # a NextItemModel (algo_platform.models)
    item_ids: np.ndarray  # item id of each model index; index 0 is padding
    device: Any

    @property
    def max_len(self) -> int:
        return self.model.config.max_len


def load_model(uri: str, family: str | None = None) -> LoadedModel:
    """The trained model at `uri`; `family` replaces the family its checkpoint names."""
    import torch

    from algo_platform.training.artifacts import load_checkpoint
    from algo_platform.training.artifacts import load_model as load_family

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    item_ids = load_checkpoint(uri, device).get("item_ids")
    if item_ids is None:
        raise ValueError(f"{uri} has no item vocabulary; it was written by an older trainer, retrain it")
    return LoadedModel(load_family(uri, device, family), item_ids.cpu().numpy(), device)


def remap(indices: np.ndarray, from_item_ids: np.ndarray, to_item_ids: np.ndarray) -> np.ndarray:
    """Item indices of one vocabulary in another (0 where the item is unknown there)."""
    lookup = pd.Index(to_item_ids).get_indexer(from_item_ids)
    lookup[lookup < 0] = 0
    lookup[0] = 0
    return lookup[indices]


def fit_length(matrix: np.ndarray, length: int, fill: int) -> np.ndarray:
    """Left-pad or left-cut a (rows, columns) matrix to `length` columns."""
    if matrix.shape[1] >= length:
        return matrix[:, matrix.shape[1] - length :]
    return np.pad(matrix, ((0, 0), (length - matrix.shape[1], 0)), constant_values=fill)


def _seen_pairs(seen: Any, item_ids: np.ndarray, own_item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target number, item index in the model's vocabulary) of every already-seen item to mask."""
    targets = np.repeat(np.arange(len(seen.lengths)), seen.lengths)
    return targets, remap(seen.values, item_ids, own_item_ids)


def model_ranks(
    loaded: LoadedModel,
    inputs: np.ndarray,
    targets: np.ndarray,
    item_ids: np.ndarray,
    batch_size: int = 512,
    seen: Any = None,
) -> tuple[np.ndarray, set[int]]:
    """Rank of every scored target (targets >= 0, row-major) and the item ids seen in top-10 lists.

    `inputs`/`targets` use the vocabulary `item_ids`; the model may have another (an older
    champion): items it does not know are padding to it, and as targets they are misses. With
    `seen` (`training.data.seen_before_targets`), each target is ranked among the items its user has
    not interacted with yet (the `exclude_seen` protocol).
    """
    import torch

    from algo_platform.training.metrics import rows_per_batch, target_ranks

    scored = targets >= 0
    own_inputs = remap(inputs, item_ids, loaded.item_ids)
    own_targets = np.where(scored, remap(np.maximum(targets, 0), item_ids, loaded.item_ids), -1)
    length = loaded.max_len
    # A model with a shorter window cannot see targets left of it: those count as misses.
    own_inputs, own_targets = fit_length(own_inputs, length, 0), fit_length(own_targets, length, -1)
    ranks_visible, covered = [], set()
    # Targets are numbered row-major, in the order `seen` lists them; the model sees the visible ones.
    target_number = np.full(scored.shape, -1, dtype=np.int64)
    target_number[scored] = np.arange(int(scored.sum()))
    target_number = fit_length(target_number, length, -1)
    seen_targets, seen_items = _seen_pairs(seen, item_ids, loaded.item_ids) if seen is not None else (None, None)
    per_row = int((own_targets >= 0).sum(axis=1).max()) if len(own_targets) else 1
    batch_size = rows_per_batch(batch_size, len(loaded.item_ids), per_row)
    with torch.no_grad():
        for start in range(0, len(own_inputs), batch_size):
            batch_inputs = torch.as_tensor(own_inputs[start : start + batch_size], device=loaded.device)
            batch_targets = torch.as_tensor(own_targets[start : start + batch_size], device=loaded.device)
            mask = batch_targets >= 0
            scores = loaded.model.item_scores(loaded.model(batch_inputs)[mask]).float()
            if seen is not None:
                numbers = target_number[start : start + batch_size][mask.cpu().numpy()]
                scores = _mask_seen(scores, numbers, seen_targets, seen_items)
            ranks_visible.append(target_ranks(scores, batch_targets[mask]).cpu().numpy())
            scores[:, 0] = float("-inf")
            covered.update(loaded.item_ids[scores.topk(COVERAGE_K, dim=1).indices.unique().cpu().numpy()].tolist())
    miss = len(loaded.item_ids)
    ranks = np.full(int(scored.sum()), miss, dtype=np.int64)
    # Row-major order of all scored targets vs of those the model could see.
    full_position = np.cumsum(scored.ravel()) - 1
    keep = np.zeros_like(scored)
    keep[:, scored.shape[1] - min(length, scored.shape[1]) :] = True
    visible = (scored & keep).ravel()
    ranks[full_position[visible]] = np.concatenate(ranks_visible) if ranks_visible else []
    return ranks, covered


def _mask_seen(scores: Any, numbers: np.ndarray, seen_targets: np.ndarray, seen_items: np.ndarray) -> Any:
    """Scores with each row's already-seen items (not its target) at -inf."""
    import torch

    row_of = {number: row for row, number in enumerate(numbers.tolist())}
    picked = np.isin(seen_targets, numbers)
    rows = np.array([row_of[n] for n in seen_targets[picked].tolist()], dtype=np.int64)
    items = seen_items[picked]
    keep = items != 0  # items the model does not know are padding to it, masked already
    scores[torch.as_tensor(rows[keep], device=scores.device), torch.as_tensor(items[keep], device=scores.device)] = (
        float("-inf")
    )
    return scores


def popularity_ranks(counts: np.ndarray, targets: np.ndarray, seen: Any = None) -> np.ndarray:
    """Ranks of the scored targets under popularity; with `seen`, each target's already-seen items
    that score at least as high no longer count against it."""
    import torch

    from algo_platform.training.metrics import fixed_score_ranks

    wanted = targets[targets >= 0]
    ranks = fixed_score_ranks(torch.as_tensor(counts, dtype=torch.float32), torch.as_tensor(wanted)).numpy()
    if seen is None:
        return ranks
    seen_targets = np.repeat(np.arange(len(wanted)), seen.lengths)
    ahead = counts[seen.values] >= counts[wanted[seen_targets]]
    known = wanted != 0  # an unknown target is a miss whatever is masked
    return ranks - np.where(known, np.bincount(seen_targets[ahead], minlength=len(wanted)), 0)


def metrics_from_ranks(ranks: pd.Series | np.ndarray) -> dict[str, float]:
    import torch

    from algo_platform.training.metrics import ranking_metrics

    return ranking_metrics(torch.as_tensor(np.array(ranks)), KS)  # a copy: pandas hands out read-only arrays


def top_k(
    loaded: LoadedModel,
    inputs: np.ndarray,
    k: int,
    exclude_seen: bool = True,
    batch_size: int = 1024,
    seen: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item ids and scores after each user's last item (their window `inputs`). With
    `exclude_seen`, no item of the window is listed, nor any of `seen` (a `RaggedSequences` of each
    row's whole history in the model's indices: a history longer than the window has items the
    model no longer sees)."""
    import torch

    from algo_platform.training.metrics import rows_per_batch

    inputs = fit_length(inputs, loaded.max_len, 0)
    all_items, all_scores = [], []
    batch_size = rows_per_batch(batch_size, len(loaded.item_ids))
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = torch.as_tensor(inputs[start : start + batch_size], device=loaded.device)
            scores = loaded.model.item_scores(loaded.model(batch)[:, -1]).float()
            scores[:, 0] = float("-inf")
            if exclude_seen:  # a short video just watched is the last thing to show again
                scores.scatter_(1, batch, float("-inf"))
                if seen is not None:
                    lengths = seen.lengths[start : start + len(batch)]
                    row_of = np.repeat(np.arange(len(lengths)), lengths)
                    columns = seen.values[seen.offsets[start] : seen.offsets[start + len(lengths)]]
                    where = (torch.as_tensor(row_of, device=scores.device),
                             torch.as_tensor(columns, dtype=torch.long, device=scores.device))  # fmt: skip
                    scores[where] = float("-inf")
            best = scores.topk(min(k, scores.shape[1] - 1), dim=1)
            all_items.append(loaded.item_ids[best.indices.cpu().numpy()])
            all_scores.append(best.values.cpu().numpy())
    return np.concatenate(all_items), np.concatenate(all_scores)


def program_ranks(
    recommender: Any, data: Any, max_len: int, item_ids: np.ndarray, chunk: int = 2048
) -> tuple[np.ndarray, set[int]]:
    """`model_ranks` for a team program's pyfunc (`evaluation.program.ProgramRecommender`): each target's
    rank in the list it returns given the user's sequence before it (a miss past the list's end),
    for the targets of `holdout_windows(data, max_len)` in the same order."""
    from algo_platform.evaluation.program import MIN_K, list_ranks
    from algo_platform.training.data import histories_before_targets, holdout_windows

    batch = holdout_windows(data, max_len)
    rows, columns = np.nonzero(batch.targets >= 0)
    users = data.user_ids[batch.user_rows[rows]]
    targets = item_ids[batch.targets[rows, columns]]
    histories = [item_ids[h] for h in histories_before_targets(data, max_len)]
    ranks, covered = [], set()
    for start in range(0, len(targets), chunk):
        listed, _ = recommender.top_k(users[start : start + chunk], histories[start : start + chunk], MIN_K)
        ranks.append(list_ranks(listed, targets[start : start + chunk], miss=len(item_ids)))
        covered.update(int(i) for items in listed for i in items[:COVERAGE_K])
    return (np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)), covered


def recommend(
    model_uri: str, sequences_path: str, vocabulary_path: str, k: int, model_format: str = "torch-state"
) -> pd.DataFrame:
    """Top-k item ids and scores for every user with a history, from the model at `model_uri` (the
    platform's checkpoint, or a team program's pyfunc with `model_format="mlflow"`)."""
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import RaggedSequences, full_sequences, latest_windows, read_sequences

    data = read_sequences(sequences_path)
    if model_format == "mlflow":
        from algo_platform.evaluation.program import load_program

        item_ids = read_item_ids(vocabulary_path)
        full = full_sequences(data)
        rows = np.flatnonzero(full.lengths > 0)
        histories = [item_ids[full.values[full.offsets[r] : full.offsets[r + 1]]] for r in rows]
        items, scores = load_program(model_uri).top_k(data.user_ids[rows], histories, k)
        scores = [s.astype("float32") for s in scores]
        return pd.DataFrame({"user_id": data.user_ids[rows], "item_ids": items, "scores": scores})
    model = load_model(model_uri)
    windows, rows = latest_windows(data, model.max_len)
    full, item_ids = full_sequences(data), read_item_ids(vocabulary_path)
    # The rows are the users with any item, so their histories, in order, are all of `full`'s values.
    lengths = full.lengths[rows]
    seen = RaggedSequences(remap(full.values, item_ids, model.item_ids), np.concatenate([[0], np.cumsum(lengths)]))
    items, scores = top_k(model, remap(windows, item_ids, model.item_ids), k, seen=seen)
    scores = scores.astype("float32")
    kept = np.isfinite(scores)  # a catalogue smaller than k: the masked (seen) items are not listed
    return pd.DataFrame(
        {
            "user_id": data.user_ids[rows],
            "item_ids": [i[keep] for i, keep in zip(items, kept, strict=True)],
            "scores": [s[keep] for s, keep in zip(scores, kept, strict=True)],
        }
    )
