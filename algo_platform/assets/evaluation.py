"""evaluation_report: the trained model against popularity and the champion of the day, overall and
per segment, on every held-out next item of the day; plots in the UI and a self-contained HTML file.

`promotion_gate` reports the promotion decision on this asset; `champion_model` applies it."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from upath import UPath

from algo_platform.evaluation.promotion import promotion_decision
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.project import ProjectResource
from algo_platform.resources.promotion import PromotionGate
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking

HEADLINE = ["hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"]
ACTIVITY_BINS = [-1, 0, 9, 49, np.inf]
ACTIVITY_LABELS = ["none", "1-9", "10-49", "50+"]
PROMOTION_GATE = "promotion_gate"


def user_segments(sequences: pd.DataFrame, user_features: pd.DataFrame) -> pd.DataFrame:
    """Segment values per user: new vs returning, activity level, device and region on the day."""
    users = pd.DataFrame({"user_id": sequences["user_id"].to_numpy()})
    history = sequences["history_length"].to_numpy()
    users["user_type"] = np.where(history == 0, "new", "returning")
    users["activity"] = pd.cut(history, ACTIVITY_BINS, labels=ACTIVITY_LABELS).astype(str)
    profile = user_features.set_index("user_id")[["main_device", "main_region"]]
    users = users.join(profile, on="user_id")
    users["device"] = users.pop("main_device").fillna("unknown")
    users["region"] = users.pop("main_region").fillna("unknown")
    return users


def summarise(
    per_target: pd.DataFrame, scorers: list[str], coverage: dict[str, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overall metrics per scorer, and per (segment, value, scorer) with user and target counts."""
    from algo_platform.evaluation.scoring import metrics_from_ranks

    overall = pd.DataFrame(
        [
            {"scorer": s, **metrics_from_ranks(per_target[s]), "coverage@10": coverage[s], "targets": len(per_target)}
            for s in scorers
        ]
    )
    rows = []
    for segment in ("user_type", "activity", "device", "region"):
        for value, group in per_target.groupby(segment):
            for scorer in scorers:
                rows.append(
                    {
                        "segment": segment,
                        "value": str(value),
                        "scorer": scorer,
                        "users": group["user_id"].nunique(),
                        "targets": len(group),
                        **metrics_from_ranks(group[scorer]),
                    }
                )
    return overall, pd.DataFrame(rows)


def _scorer_ranks(
    model_uri: str, model_format: str, data, batch, item_ids: np.ndarray, seen, max_len: int
) -> tuple[np.ndarray, set[int]]:
    """Ranks of the day's targets and the items of the top-10 lists, from the platform's checkpoint or
    a team program's pyfunc."""
    from algo_platform.evaluation.scoring import load_model, model_ranks, program_ranks

    if model_format == "mlflow":
        from algo_platform.evaluation.program import load_program

        return program_ranks(load_program(model_uri), data, max_len, item_ids)
    return model_ranks(load_model(model_uri), batch.inputs, batch.targets, item_ids, seen=seen)


def evaluate_day(
    sequences_path: str,
    vocabulary_path: str,
    user_features: pd.DataFrame,
    model_uri: str,
    champion_uri: str | None,
    exclude_seen: bool = False,
    model_format: str = "torch-state",
    champion_format: str = "torch-state",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every scorer on the same held-out targets: the new model, popularity and the champion (each
    a checkpoint or a program's pyfunc)."""
    import pyarrow.parquet as pq

    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.evaluation.scoring import load_model, popularity_ranks
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import holdout_windows, popularity_scores, read_sequences, seen_before_targets

    data = read_sequences(sequences_path)
    item_ids = read_item_ids(vocabulary_path)
    # The candidate's window decides which targets are scored; a program sees whole histories.
    max_len = TrainConfig.max_len if model_format == "mlflow" else load_model(model_uri).max_len
    batch = holdout_windows(data, max_len)
    # Every scorer ranks each target among the items its user has not interacted with yet.
    seen = seen_before_targets(data, max_len) if exclude_seen else None
    scored = batch.targets >= 0
    per_target = pd.DataFrame({"user_id": np.repeat(data.user_ids[batch.user_rows], scored.sum(axis=1))})
    per_target["sequence_model"], covered = _scorer_ranks(model_uri, model_format, data, batch, item_ids, seen, max_len)
    coverage = {"sequence_model": len(covered) / (len(item_ids) - 1)}
    popularity = popularity_scores(data.history, len(item_ids))
    per_target["popularity"] = popularity_ranks(popularity, batch.targets, seen)
    coverage["popularity"] = min(10, len(item_ids) - 1) / (len(item_ids) - 1)
    scorers = ["sequence_model", "popularity"]
    if champion_uri:
        per_target["champion"], covered = _scorer_ranks(
            champion_uri, champion_format, data, batch, item_ids, seen, max_len
        )
        coverage["champion"] = len(covered) / (len(item_ids) - 1)
        scorers.insert(1, "champion")
    table = pq.read_table(sequences_path, columns=["user_id", "history_length"]).to_pandas()
    per_target = per_target.merge(user_segments(table, user_features), on="user_id", how="left")
    return summarise(per_target, scorers, coverage)


def report_images(losses: list[float], overall: pd.DataFrame, segments: pd.DataFrame) -> dict[str, bytes]:
    """The report's plots as PNG bytes, by title."""
    from algo_platform.evaluation import report as render

    return {
        "Training loss per epoch": render.loss_curve(losses),
        "Model vs baselines": render.metric_bars(overall, HEADLINE),
        "NDCG@10 per segment": render.segment_bars(segments, "ndcg@10"),
    }


def log_report(
    tracking: ExperimentTracking, mlflow_run_id: str, overall: pd.DataFrame, html: str, images: dict[str, bytes]
) -> None:
    """Every scorer's headline metrics, the HTML report and its plots, on the model's MLflow run."""
    metrics = {
        f"eval_{scorer}_{name}": float(row[name])
        for scorer, row in overall.set_index("scorer").iterrows()
        for name in [*HEADLINE, "coverage@10"]
    }
    with tempfile.TemporaryDirectory() as folder:
        files = [str(Path(folder) / "report.html")]
        Path(files[0]).write_text(html)
        for title, png in images.items():
            files.append(str(Path(folder) / (title.lower().replace(" ", "_").replace("@", "") + ".png")))
            Path(files[-1]).write_bytes(png)
        tracking.log_evaluation(mlflow_run_id, metrics, files)


def _as_long_table(overall: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    overall = overall.assign(segment="all", value="all", users=np.nan)
    return pd.concat([overall, segments], ignore_index=True)


def split_report(report: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    overall = report[report["segment"] == "all"].drop(columns=["segment", "value", "users"])
    return overall.reset_index(drop=True), report[report["segment"] != "all"].reset_index(drop=True)


def evaluation_report(
    context: dg.AssetExecutionContext,
    sequence_model: dict,
    training_sequences: UPath,
    item_vocabulary: UPath,
    user_features: pd.DataFrame,
    storage: PlatformStorage,
    experiment_tracking: ExperimentTracking,
    project: ProjectResource,
) -> dg.Output[pd.DataFrame]:
    """HR/NDCG@5/10/20, MRR and coverage of the new model vs popularity and the champion, per segment."""
    from algo_platform.evaluation import report as render

    # The champion as it stood for this day, so a backfilled day's report is the one it had.
    champion = experiment_tracking.champion_on(context.partition_key)
    champion_uri = champion.model_uri if champion and champion.version != sequence_model["model_version"] else None
    overall, segments = evaluate_day(
        str(training_sequences),
        str(item_vocabulary),
        user_features,
        sequence_model["model_uri"],
        champion_uri,
        project.exclude_seen,
        sequence_model.get("model_format", "torch-state"),
        champion.tags.get("model_format", "torch-state") if champion_uri else "torch-state",
    )
    images = report_images(sequence_model["losses"], overall, segments)
    by_scorer = overall.set_index("scorer")
    model, popularity = by_scorer.loc["sequence_model"], by_scorer.loc["popularity"]
    summary = [
        f"day {context.partition_key}: {int(model['targets']):,} held-out next items",
        f"model HR@10 {model['hr@10']:.4f}, NDCG@10 {model['ndcg@10']:.4f}; popularity HR@10 "
        f"{popularity['hr@10']:.4f}, NDCG@10 {popularity['ndcg@10']:.4f}",
        f"champion: version {champion.version}" if champion_uri else "no champion yet (first model)",
        f"model version {sequence_model['model_version']}, code {sequence_model['code_version']}",
    ]
    report_path = storage.layout.evaluation_report(context.partition_key, context.run_id)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    html = render.html_report(
        f"Evaluation {context.partition_key}", summary, {"Overall": overall, "Per segment": segments}, images
    )
    report_path.write_text(html)
    log_report(experiment_tracking, sequence_model["mlflow_run_id"], overall, html, images)

    metadata = {
        **{f"model_{name}": float(model[name]) for name in [*HEADLINE, "coverage@10"]},
        **{f"popularity_{name}": float(popularity[name]) for name in ("hr@10", "ndcg@10")},
        "hr@10_lift_over_popularity": float(model["hr@10"] / popularity["hr@10"]) if popularity["hr@10"] else 0.0,
        "evaluated_targets": int(model["targets"]),
        "exclude_seen": project.exclude_seen,
        "champion_version": champion.version if champion_uri else "none",
        "model_uri": dg.MetadataValue.path(sequence_model["model_uri"]),
        "report_html": dg.MetadataValue.path(str(report_path)),
        "mlflow_run": dg.MetadataValue.url(experiment_tracking.run_url(sequence_model["mlflow_run_id"])),
        "overall": dg.MetadataValue.md(overall.round(4).to_markdown(index=False)),
        "plots": dg.MetadataValue.md(render.markdown_images(images)),
    }
    if champion_uri:
        metadata |= {f"champion_{name}": float(by_scorer.loc["champion", name]) for name in ("hr@10", "ndcg@10")}
    context.log.info(summary[1])
    return dg.Output(_as_long_table(overall, segments), metadata=metadata)


def promotion_gate(evaluation_report: pd.DataFrame, promotion: PromotionGate) -> dg.AssetCheckResult:
    """The new model beats the champion on NDCG@10 by the margin and no large segment drops by more
    than the tolerance (the first model must beat popularity). Failing (WARN) means champion_model keeps
    the champion."""
    overall, segments = split_report(evaluation_report)
    decision = promotion_decision(overall, segments, promotion.policy())
    # WARN: keeping the champion is a normal outcome, not a failed run; champion_model applies
    # the same decision itself, so nothing downstream needs this check to stop it.
    return dg.AssetCheckResult(
        passed=decision.promote,
        severity=dg.AssetCheckSeverity.WARN,
        description=("promote: " if decision.promote else "keep the champion: ") + "; ".join(decision.reasons),
        metadata={
            "reasons": dg.MetadataValue.json(decision.reasons),
            "margin": promotion.margin,
            "segment_tolerance": promotion.segment_tolerance,
        },
    )


def build_evaluation_assets(partitions: PeriodPartitions) -> list:
    """evaluation_report of one project, with the promotion gate check."""
    report = dg.asset(partitions_def=partitions, group_name="evaluation", kinds={"pytorch", "pandas", "mlflow"})(
        evaluation_report
    )
    gate = dg.asset_check(asset=report, name=PROMOTION_GATE, blocking=True, partitions_def=partitions)(promotion_gate)
    return [report, gate]
