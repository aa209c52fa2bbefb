"""Registered engagement models as MLflow pyfunc models:

    import mlflow
    ranker = mlflow.pyfunc.load_model("models:/<project>-<task>-<family>@champion")
    ranker.predict(features)   # a frame of the FEATURES columns -> probability per row

Whatever wrote the model (the platform's trainer, a team class, a `command:` task's MLflow model),
the registered version loads the same way; loading needs `algo_platform` installed.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class EngagementPredictor(mlflow.pyfunc.PythonModel):
    """P(engage) for each row of engagement features."""

    def load_context(self, context) -> None:
        from algo_platform.tasks.engagement.scorer import load_scorer

        config = context.model_config or {}
        self.scorer = load_scorer(context.artifacts["checkpoint"], config.get("model_format", "torch-state"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"probability": self.scorer.probabilities(model_input)})
