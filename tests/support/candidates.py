"""Three retrains' candidates of a project's next-item task, recorded in a Dagster instance as the
model, evaluation and champion assets record them (each retrain one run), for the models page."""

from __future__ import annotations

import dagster as dg

# (day, family, source, candidate NDCG@10, champion's on the same split, popularity's, outcome, why)
RETRAINS = [
    ("2026-11-18", "sasrec", "built-in sasrec", 0.081, None, 0.044, "promoted", "- beats popularity 0.0440"),
    ("2026-11-19", "ease", "built-in ease", 0.074, 0.0815, 0.044, "kept", "- ndcg@10 0.0740 vs champion 0.0815"),
    ("2026-11-20", "command", "command python item_knn.py", 0.090, 0.0812, 0.045, "promoted", "- beats 0.0812"),
]


def _retrain(instance: dg.DagsterInstance, project: str, version: int, retrain: tuple) -> None:
    day, family, source, value, champion, popularity, outcome, why = retrain
    partitions = dg.DailyPartitionsDefinition(start_date="2026-11-01")
    report = {"model_ndcg@10": value, "popularity_ndcg@10": popularity}
    if champion is not None:
        report["champion_ndcg@10"] = champion

    @dg.asset(key=[project, "sequence_model"], partitions_def=partitions)
    def model() -> dg.MaterializeResult:
        run = dg.MetadataValue.url("http://mlflow.example/r")
        return dg.MaterializeResult(metadata={"family": family, "source": source, "mlflow_run": run})

    @dg.asset(key=[project, "evaluation_report"], deps=[model], partitions_def=partitions)
    def evaluation() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=report)

    @dg.asset(key=[project, "champion_model"], deps=[evaluation], partitions_def=partitions)
    def champion_model() -> dg.MaterializeResult:
        decision = {"candidate_version": str(version), "outcome": outcome, "why": dg.MetadataValue.md(why)}
        return dg.MaterializeResult(metadata=decision)

    assert dg.materialize([model, evaluation, champion_model], instance=instance, partition_key=day).success


def record_candidates(home: str, project: str) -> None:
    with dg.DagsterInstance.from_config(home) as instance:
        for version, retrain in enumerate(RETRAINS, 1):
            _retrain(instance, project, version, retrain)
