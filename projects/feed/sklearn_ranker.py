"""A ranking task the platform did not write: a logistic regression over every pair of features
(their products: the interactions a linear model misses), from scikit-learn.

It speaks the task contract through Dagster Pipes (the `dagster-pipes` package) and nothing else of
the platform: it reads its inputs from the Pipes extra `task`, trains, writes an MLflow model and
reports its outputs. project.yaml runs it as `command: [python, sklearn_ranker.py]`.
"""

import os
import shutil

import mlflow.sklearn
import pandas as pd
from dagster_pipes import open_dagster_pipes
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler


def main() -> None:
    with open_dagster_pipes() as pipes:
        task = pipes.extras["task"]
        examples = pd.read_parquet(task["tables"]["examples"])
        features = task["features"]
        train = examples[examples["split"] == "train"]
        validation = examples[examples["split"] == "validation"]
        model = make_pipeline(StandardScaler(), PolynomialFeatures(degree=2), LogisticRegression(C=0.1, max_iter=2000))
        model.fit(train[features], train["label"])
        predicted = model.predict_proba(validation[features])[:, 1]
        auc = float(roc_auc_score(validation["label"], predicted))
        pipes.log.info(f"validation AUC {auc:.4f} on {len(validation)} impressions")
        model_dir = os.path.join(task["output_dir"], "mlflow_model")
        if not os.path.exists(os.path.join(model_dir, "MLmodel")):  # a retry finds the attempt before's model
            # Written beside, then moved into place: a killed attempt leaves no half model. MLflow stores
            # it with skops, not pickle, so loading the model runs no code from the file.
            partial = f"{model_dir}.partial-{os.getpid()}"
            mlflow.sklearn.save_model(model, partial, pyfunc_predict_fn="predict_proba")
            shutil.rmtree(model_dir, ignore_errors=True)
            os.replace(partial, model_dir)
        pipes.report_asset_materialization(
            metadata={
                "model_uri": {"raw_value": model_dir, "type": "path"},
                "model_format": "mlflow",
                "metrics_per_epoch": {
                    "raw_value": [
                        {"validation_auc": auc, "validation_log_loss": float(log_loss(validation["label"], predicted))}
                    ],
                    "type": "json",
                },
                "validation_auc": auc,
            }
        )


if __name__ == "__main__":
    main()
