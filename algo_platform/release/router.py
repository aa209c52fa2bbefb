"""The grey release as one MLflow pyfunc, for online model servers: it carries the champion and the
challenger and answers each user from their arm, by the same assignment function as the
recommendations asset, so an MLflow model server (or KServe, Seldon) serves a release without
knowing of it. (KServe's own canary splits requests, not users: a user would flip between models
from one request to the next.)

    router = mlflow.pyfunc.load_model("models:/<project>-next_item-release@live")
    router.predict(pd.DataFrame({"user_id": [10012], "item_ids": [[101, 205]]}))
    # -> item_ids, scores, arm, model_version per row
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from algo_platform.release.assignment import CHALLENGER, arms


class ReleaseRouter(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        config = context.model_config
        self.experiment, self.share = config["experiment"], float(config["challenger_percent"])
        self.versions = {"champion": config["champion_version"], "challenger": config["challenger_version"]}
        self.models = {
            "champion": mlflow.pyfunc.load_model(context.artifacts["champion"]),
            "challenger": mlflow.pyfunc.load_model(context.artifacts["challenger"]),
        }

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Each row answered by its user's arm's model, whatever that model returns (next-item: item_ids
        and scores; an engagement task's: its probabilities), with the arm and the version."""
        arm = arms(self.experiment, model_input["user_id"].to_numpy(), self.share)
        parts = []
        for name in ("champion", "challenger"):
            rows = (arm == CHALLENGER) if name == "challenger" else (arm != CHALLENGER)
            if rows.any():
                found = self.models[name].predict(model_input[rows].reset_index(drop=True))
                found = found if isinstance(found, pd.DataFrame) else pd.DataFrame({"prediction": list(found)})
                parts.append(found.set_axis(model_input.index[rows]))
        if not parts:  # no rows asked
            return pd.DataFrame(columns=["arm", "model_version"])
        answer = pd.concat(parts).reindex(model_input.index)
        answer["arm"] = arm
        answer["model_version"] = np.where(arm == CHALLENGER, self.versions["challenger"], self.versions["champion"])
        return answer.reset_index(drop=True)
