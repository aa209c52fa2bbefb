"""Registered models as MLflow pyfunc models: `models:/<name>@champion` loads with MLflow's own API.

    import mlflow
    recommender = mlflow.pyfunc.load_model("models:/<project>-next_item@champion")
    recommender.predict(pd.DataFrame({"item_ids": [[101, 205, 317]]}))   # -> item_ids, scores

Each version carries the trainer's checkpoint as an artifact and loads it weights-only through
the model interface, whatever the family; a team program's version carries the program's own MLflow
model (`ProgramRecommender`). Loading needs `algo_platform` installed (the wrapper class is
referenced, not copied).
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

DEFAULT_K = 20


class NextItemRecommender(mlflow.pyfunc.PythonModel):
    """Top-K next items for each row's item history (raw item ids, oldest first)."""

    def load_context(self, context) -> None:
        from algo_platform.evaluation.scoring import load_model

        config = context.model_config or {}
        # A team's class travels with the version (artifact `family_code`): loaded from that copy, the
        # champion loads wherever the project folder is, or without it.
        family = (
            f"{context.artifacts['family_code']}:{config['family_class']}"
            if "family_code" in context.artifacts
            else None
        )
        self.loaded = load_model(context.artifacts["checkpoint"], family)
        self.k = int(config.get("k", DEFAULT_K))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from algo_platform.evaluation.scoring import top_k
        from algo_platform.training.data import RaggedSequences

        index = pd.Index(self.loaded.item_ids)
        windows = np.zeros((len(model_input), self.loaded.max_len), dtype=np.int64)
        seen = []  # every item of the history is left out of its list, not only the window's
        for row, history in enumerate(model_input["item_ids"]):
            known = index.get_indexer(list(history))
            known = np.where(known < 0, 0, known)  # items the model never saw are padding to it
            seen.append(known)
            window = known[-self.loaded.max_len :]
            if len(window):
                windows[row, -len(window) :] = window
        lengths = np.array([len(known) for known in seen], dtype=np.int64)
        flat = np.concatenate(seen) if seen else np.zeros(0, dtype=np.int64)
        ragged = RaggedSequences(flat.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]))
        items, scores = top_k(self.loaded, windows, self.k, seen=ragged)
        kept = np.isfinite(scores)  # a catalogue smaller than k: the masked (seen) items are not listed
        return pd.DataFrame(
            {
                "item_ids": [list(map(int, i[keep])) for i, keep in zip(items, kept, strict=True)],
                "scores": [list(s[keep]) for s, keep in zip(scores, kept, strict=True)],
            }
        )


class ProgramRecommender(mlflow.pyfunc.PythonModel):
    """A team program's own pyfunc (`model.command:`), registered inside this wrapper so every version
    of the task answers alike: the program's model travels as the artifact `program`, its lists are
    cut to `k`, and a frame without `user_id` is accepted (the program is given -1)."""

    def load_context(self, context) -> None:
        from algo_platform.evaluation.program import load_program

        self.program = load_program(context.artifacts["program"])
        self.k = int((context.model_config or {}).get("k", DEFAULT_K))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        users = model_input["user_id"].to_numpy() if "user_id" in model_input else np.full(len(model_input), -1)
        histories = [np.asarray(list(h), dtype=np.int64) for h in model_input["item_ids"]]
        items, scores = self.program.top_k(users, histories, self.k)
        return pd.DataFrame({"item_ids": [list(map(int, i)) for i in items], "scores": [list(s) for s in scores]})
