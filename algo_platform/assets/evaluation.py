"""evaluation_report: the trained model against a popularity baseline on the held-out day."""

import dagster as dg
import pandas as pd
from upath import UPath

from algo_platform.assets.partitions import daily_partitions

EVAL_K = 10


def evaluate_model(model_uri: str, sequences_path: str, k: int = EVAL_K) -> pd.DataFrame:
    """HR@k and NDCG@k of the model and of popularity, on every held-out next item."""
    # torch is imported here, not at module level: loading the code location must stay light.
    import torch

    from algo_platform.training.data import holdout_windows, popularity_scores, read_sequences
    from algo_platform.training.train import evaluate, load_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_uri, device)
    data = read_sequences(sequences_path)
    batch = holdout_windows(data, model.config.max_len)
    scores = evaluate(
        model,
        batch.inputs,
        batch.targets,
        device,
        k,
        baseline_scores=popularity_scores(data.history, model.config.num_items),
    )
    return pd.DataFrame(
        [
            {
                "scorer": "sequence_model",
                f"hr@{k}": scores[f"hr@{k}"],
                f"ndcg@{k}": scores[f"ndcg@{k}"],
                "targets": scores["targets"],
            },
            {
                "scorer": "popularity",
                f"hr@{k}": scores[f"popularity_hr@{k}"],
                f"ndcg@{k}": scores[f"popularity_ndcg@{k}"],
                "targets": scores["targets"],
            },
        ]
    )


@dg.asset(partitions_def=daily_partitions, group_name="evaluation", kinds={"pytorch", "pandas"})
def evaluation_report(
    context: dg.AssetExecutionContext, sequence_model: dict, training_sequences: UPath
) -> dg.Output[pd.DataFrame]:
    """HR@10 and NDCG@10 of the trained model vs the popularity baseline on the held-out day."""
    report = evaluate_model(sequence_model["model_uri"], str(training_sequences))
    model, baseline = report.iloc[0], report.iloc[1]
    hr, ndcg = f"hr@{EVAL_K}", f"ndcg@{EVAL_K}"
    context.log.info(f"model {hr} {model[hr]:.4f} vs popularity {baseline[hr]:.4f}")
    return dg.Output(
        report,
        metadata={
            f"model_{hr}": float(model[hr]),
            f"model_{ndcg}": float(model[ndcg]),
            f"popularity_{hr}": float(baseline[hr]),
            f"popularity_{ndcg}": float(baseline[ndcg]),
            f"{hr}_lift_over_popularity": float(model[hr] / baseline[hr]) if baseline[hr] > 0 else float("inf"),
            "evaluated_targets": int(model["targets"]),
            "model_uri": dg.MetadataValue.path(sequence_model["model_uri"]),
            "report": dg.MetadataValue.md(report.round(4).to_markdown(index=False)),
        },
    )
