"""A next-item model the platform did not write: item-kNN (Sarwar et al., 2001) in numpy and scipy.

Items are similar when the same users interacted with both (cosine over users, shrunk for pairs
few users share); a user's next items are the ones most similar to everything in their history.
It speaks the next-item task contract through Dagster Pipes (the `dagster-pipes` package) and
nothing else of the platform: it reads its inputs from the Pipes extra `task`, fits, checks itself
on each user's last training item, writes an MLflow pyfunc and reports its outputs. project.yaml
runs it as `model: {command: [python, item_knn.py], neighbours: 100}`.
"""

import os
import shutil
import tempfile

import mlflow.pyfunc
import numpy as np
import pandas as pd
import scipy.sparse as sp
from dagster_pipes import open_dagster_pipes


def fit(histories: list[np.ndarray], num_items: int, neighbours: int, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """Each item's `neighbours` most similar items (indices) and their similarities."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    users = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(histories))), shape=(len(histories), num_items))
    users.data[:] = 1.0  # an item rated twice by a user counts once
    counts = np.asarray(users.sum(axis=0)).ravel()
    together = (users.T @ users).tocsr()
    together.setdiag(0)
    together.eliminate_zeros()
    norms = np.sqrt(counts)
    top = np.zeros((num_items, neighbours), dtype=np.int64)
    weights = np.zeros((num_items, neighbours))
    for item in range(num_items):
        start, end = together.indptr[item], together.indptr[item + 1]
        others, shared = together.indices[start:end], together.data[start:end]
        similarity = shared / (norms[item] * norms[others] + shrink)
        best = np.argsort(-similarity, kind="stable")[:neighbours]
        top[item, : len(best)], weights[item, : len(best)] = others[best], similarity[best]
    return top, weights


def rank(history: np.ndarray, top: np.ndarray, weights: np.ndarray, popularity: np.ndarray, k: int, exclude_seen: bool):
    scores = np.zeros(len(popularity))
    np.add.at(scores, top[history].ravel(), weights[history].ravel())
    scores += popularity * 1e-9  # ties (a user with no neighbours) go to the popular items
    if exclude_seen:
        scores[history] = -np.inf
    best = np.argsort(-scores, kind="stable")[:k]
    best = best[np.isfinite(scores[best])]
    return best, scores[best]


class ItemKNN(mlflow.pyfunc.PythonModel):
    """Given each user's history (raw item ids), their top k unseen items and scores."""

    def load_context(self, context) -> None:
        arrays = np.load(context.artifacts["neighbours"])
        self.item_ids, self.top, self.weights = arrays["item_ids"], arrays["top"], arrays["weights"]
        self.popularity = arrays["popularity"]
        self.index = pd.Index(self.item_ids)
        self.k = int(context.model_config["k"])
        self.exclude_seen = bool(context.model_config["exclude_seen"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        items, scores = [], []
        for history in model_input["item_ids"]:
            known = self.index.get_indexer(list(history))
            best, best_scores = rank(known[known >= 0], self.top, self.weights, self.popularity, self.k,
                                     self.exclude_seen)  # fmt: skip
            items.append(self.item_ids[best].tolist())
            scores.append(best_scores.tolist())
        return pd.DataFrame({"item_ids": items, "scores": scores})


def validation_ndcg(histories, num_items, settings, popularity) -> float:
    """NDCG@10 of each user's last training item, fitted on everything before it."""
    users = [h for h in histories if len(h) >= 2]
    top, weights = fit([h[:-1] for h in users] or [np.zeros(0, np.int64)], num_items, settings["neighbours"],
                       settings["shrink"])  # fmt: skip
    gains = []
    for history in users:
        best, _ = rank(history[:-1], top, weights, popularity, 10, settings["exclude_seen"])
        hit = np.flatnonzero(best == history[-1])
        gains.append(1.0 / np.log2(hit[0] + 2.0) if len(hit) else 0.0)
    return float(np.mean(gains)) if gains else 0.0


def main() -> None:
    with open_dagster_pipes() as pipes:
        task = pipes.extras["task"]
        settings = {"neighbours": 100, "shrink": 10.0, **task["hyperparameters"]}
        item_ids = pd.read_parquet(task["tables"]["items"])["item_id"].to_numpy()
        index = pd.Index(item_ids)
        interactions = pd.read_parquet(task["tables"]["interactions"])
        histories = [index.get_indexer(items) for items in interactions["item_ids"]]
        histories = [h[h >= 0] for h in histories]
        popularity = np.bincount(np.concatenate(histories), minlength=len(item_ids)).astype(float)
        ndcg = validation_ndcg(histories, len(item_ids), settings, popularity)
        pipes.log.info(f"validation NDCG@10 {ndcg:.4f} on {len(histories)} users' last training items")
        top, weights = fit(histories, len(item_ids), settings["neighbours"], settings["shrink"])

        model_dir = os.path.join(task["output_dir"], "mlflow_model")
        if not os.path.exists(os.path.join(model_dir, "MLmodel")):  # a retry finds the attempt before's model
            with tempfile.TemporaryDirectory() as scratch:
                arrays = os.path.join(scratch, "neighbours.npz")
                np.savez(arrays, item_ids=item_ids, top=top, weights=weights, popularity=popularity)
                # Written beside, then moved into place: a killed attempt leaves no half model.
                partial = f"{model_dir}.partial-{os.getpid()}"
                mlflow.pyfunc.save_model(
                    partial,
                    python_model=ItemKNN(),
                    artifacts={"neighbours": arrays},
                    model_config={"k": settings["k"], "exclude_seen": settings["exclude_seen"]},
                )
            shutil.rmtree(model_dir, ignore_errors=True)
            os.replace(partial, model_dir)
        pipes.report_asset_materialization(
            metadata={
                "model_uri": {"raw_value": model_dir, "type": "path"},
                "model_format": "mlflow",
                "metrics_per_epoch": {"raw_value": [{"validation_ndcg@10": ndcg}], "type": "json"},
                "validation_ndcg@10": ndcg,
            }
        )


if __name__ == "__main__":
    main()
