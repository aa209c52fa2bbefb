"""Registered models as MLflow pyfunc models: `models:/<name>@champion` loads with MLflow's own API.

    import mlflow
    recommender = mlflow.pyfunc.load_model("models:/algo-platform-sequence-model@champion")
    recommender.predict(pd.DataFrame({"item_ids": [[101, 205, 317]]}))   # -> item_ids, scores

Each version carries the trainer's checkpoint as an artifact and loads it weights-only through
the model interface, whatever the family. Loading needs `algo_platform` installed (the wrapper
class is referenced, not copied).
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

        self.loaded = load_model(context.artifacts["checkpoint"])
        self.k = int((context.model_config or {}).get("k", DEFAULT_K))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from algo_platform.evaluation.scoring import top_k

        index = pd.Index(self.loaded.item_ids)
        windows = np.zeros((len(model_input), self.loaded.max_len), dtype=np.int64)
        for row, history in enumerate(model_input["item_ids"]):
            known = index.get_indexer(list(history)[-self.loaded.max_len :])
            known = np.where(known < 0, 0, known)  # items the model never saw are padding to it
            if len(known):
                windows[row, -len(known) :] = known
        items, scores = top_k(self.loaded, windows, self.k)
        return pd.DataFrame({"item_ids": [list(map(int, i)) for i in items], "scores": [list(s) for s in scores]})
