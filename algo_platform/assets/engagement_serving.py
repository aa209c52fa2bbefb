"""An engagement task's evaluation, promotion and serving: `<t>_evaluation` (with the
`<t>_promotion_gate` check) -> `<t>_champion` -> `<t>_recommendations`, which re-rank the
next-item champion's candidates by the engagement champion's estimate (two stages)."""

import datetime as dt
import time

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
from upath import UPath

from algo_platform.assets.engagement_training import CANDIDATE, events_frame, tracking_key
from algo_platform.assets.evaluation import split_report
from algo_platform.assets.release import running_release, serve_by_arm, served_activity
from algo_platform.assets.serving import choose_champion
from algo_platform.core.project import Project, Task
from algo_platform.evaluation.promotion import PromotionPolicy
from algo_platform.release.assignment import CHALLENGER, arms
from algo_platform.resources.io_managers import AS_PATH
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.tracking import ExperimentTracking
from algo_platform.tasks.engagement.examples import candidate_features


def evaluation_and_serving(
    project: Project,
    task: Task,
    partitions: PeriodPartitions,
    policy: PromotionPolicy,
    window: dg.AssetIn,
) -> list:
    t = task.name
    label = task.label
    tracking_of = tracking_key(task)

    @dg.asset(
        name=f"{t}_evaluation",
        ins={
            "model": dg.AssetIn(key=f"{t}_model"),
            "examples": dg.AssetIn(key=f"{t}_examples"),
            "cleaned_events": window,
            "training_sequences": dg.AssetIn(metadata=AS_PATH),
            "item_vocabulary": dg.AssetIn(metadata=AS_PATH),
            # The next-item champion of the day proposes the candidates of the two-stage measure.
            "champion_model": dg.AssetIn(),
        },
        partitions_def=partitions,
        group_name="evaluation",
        kinds={"pytorch", "pandas", "mlflow"},
        required_resource_keys={tracking_of},
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        model: dict,
        examples: pd.DataFrame,
        cleaned_events: dict[str, pd.DataFrame],
        training_sequences: UPath,
        item_vocabulary: UPath,
        champion_model: dict,
    ) -> dg.Output[pd.DataFrame]:
        """AUC, log-loss, calibration of the new model vs the champion and two baselines on the held-out
        day; and NDCG@10 of the next-item champion's candidates re-ranked by the new model."""
        from algo_platform.tasks.engagement.evaluate import holdout_probabilities, summarise
        from algo_platform.tasks.engagement.metrics import calibration_table
        from algo_platform.tasks.engagement.scorer import load_scorer

        tracking: ExperimentTracking = getattr(context.resources, tracking_of)
        scorer = load_scorer(model["model_uri"], model["model_format"])
        champion = tracking.champion_on(context.partition_key)
        champion_scorer = None
        if champion and champion.version != model["model_version"]:
            champion_scorer = load_scorer(champion.model_uri, champion.tags.get("model_format", "torch-state"))
        scored = holdout_probabilities(examples, scorer, champion_scorer)
        overall, segments = summarise(scored)
        day = dt.date.fromisoformat(context.partition_key)
        events = events_frame(cleaned_events)
        two_stage = _two_stage(champion_model, examples, events, day, training_sequences, item_vocabulary, scorer, task)
        by_scorer = overall.set_index("scorer")
        calibration = calibration_table(scored["label"].to_numpy(), scored[CANDIDATE].to_numpy())
        tracking.log_evaluation(
            model["mlflow_run_id"],
            {
                **{
                    f"eval_{s}_{m}": float(by_scorer.loc[s, m])
                    for s in by_scorer.index
                    for m in ("auc", "log_loss", "ece")
                },
                **{f"eval_{name}": value for name, value in two_stage.items() if isinstance(value, float)},
            },
            [],
        )
        metadata = {
            **{f"model_{m}": float(by_scorer.loc[CANDIDATE, m]) for m in ("auc", "log_loss", "ece")},
            **{f"{s}_auc": float(by_scorer.loc[s, "auc"]) for s in by_scorer.index if s != CANDIDATE},
            **two_stage,
            "evaluated_impressions": int(by_scorer.loc[CANDIDATE, "examples"]),
            "champion_version": champion.version if champion_scorer else "none",
            "overall": dg.MetadataValue.md(overall.round(4).to_markdown(index=False)),
            "calibration": dg.MetadataValue.md(calibration.round(4).to_markdown(index=False)),
        }
        context.log.info(
            f"AUC {by_scorer.loc[CANDIDATE, 'auc']:.4f} (item rate {by_scorer.loc['item_rate', 'auc']:.4f}, "
            f"logistic regression {by_scorer.loc['logistic_regression', 'auc']:.4f})"
        )
        long = pd.concat([overall.assign(segment="all", value="all", users=np.nan), segments], ignore_index=True)
        return dg.Output(long, metadata=metadata)

    @dg.asset_check(asset=evaluation, name=f"{t}_promotion_gate", blocking=True, partitions_def=partitions)
    def promotion_gate(report: pd.DataFrame) -> dg.AssetCheckResult:
        """The new model beats the champion's AUC by the margin, and no segment drops beyond the tolerance
        (the first model must beat the baseline). Failing (WARN) means the champion is kept."""
        from algo_platform.evaluation.promotion import promotion_decision

        overall, segments = split_report(report)
        decision = promotion_decision(overall, segments, policy)
        return dg.AssetCheckResult(
            passed=decision.promote,
            severity=dg.AssetCheckSeverity.WARN,
            description=("promote: " if decision.promote else "keep the champion: ") + "; ".join(decision.reasons),
            metadata={"reasons": dg.MetadataValue.json(decision.reasons), "margin": policy.margin},
        )

    @dg.asset(
        name=f"{t}_champion",
        ins={"model": dg.AssetIn(key=f"{t}_model"), "report": dg.AssetIn(key=f"{t}_evaluation")},
        partitions_def=partitions,
        group_name="evaluation",
        io_manager_key="json_io_manager",
        kinds={"mlflow"},
        required_resource_keys={tracking_of},
    )
    def champion(context: dg.AssetExecutionContext, model: dict, report: pd.DataFrame) -> dg.Output[dict]:
        """The task's serving model: the new one if the promotion rule says so, else the champion kept."""
        overall, segments = split_report(report)
        tracking = getattr(context.resources, tracking_of)
        return choose_champion(context, model, overall, segments, tracking, policy, task.release, t)

    @dg.asset(
        name=f"{t}_recommendations",
        ins={
            "champion": dg.AssetIn(key=f"{t}_champion"),
            "champion_model": dg.AssetIn(),
            "cleaned_events": window,
            "training_sequences": dg.AssetIn(metadata=AS_PATH),
            "item_vocabulary": dg.AssetIn(metadata=AS_PATH),
        },
        partitions_def=partitions,
        group_name="serving",
        kinds={"pytorch", "parquet"},
        required_resource_keys={tracking_of},
    )
    def recommendations(
        context: dg.AssetExecutionContext,
        champion: dict,
        champion_model: dict,
        cleaned_events: dict[str, pd.DataFrame],
        training_sequences: UPath,
        item_vocabulary: UPath,
    ) -> dg.Output[pd.DataFrame]:
        """Top 20 per user: the next-item champion's candidates re-ranked by this task's champion."""
        from algo_platform.tasks.engagement.scorer import load_scorer
        from algo_platform.tasks.engagement.two_stage import champion_candidates, rank_candidates
        from algo_platform.training.artifacts import read_item_ids
        from algo_platform.training.data import read_sequences

        started = time.perf_counter()
        data = read_sequences(str(training_sequences))
        item_ids = read_item_ids(str(item_vocabulary))
        rows, candidates, log_probs = champion_candidates(champion_model, data, item_ids, True, task.candidates)
        scorer = load_scorer(champion["model_uri"], champion.get("model_format", "torch-state"))
        events = events_frame(cleaned_events)
        # Served the morning after the day: everything up to and including it is history.
        as_of = dt.date.fromisoformat(context.partition_key) + dt.timedelta(days=1)
        users = data.user_ids[rows]
        hours = np.full(len(users), 12)  # the hour it is served is unknown ahead; midday for everyone

        def probabilities_with(model):
            def probabilities_of(pairs: pd.DataFrame) -> np.ndarray:
                features = candidate_features(events, pl.from_pandas(pairs), as_of, label.events, label.complete_ratio)
                return model.probabilities(features.to_pandas())

            return probabilities_of

        ranked, probabilities = rank_candidates(users, candidates, log_probs, hours, probabilities_with(scorer))
        k = 20
        table = pd.DataFrame(
            {
                "user_id": users,
                "item_ids": list(ranked[:, :k]),
                "engagement": list(probabilities[:, :k].astype("float32")),
            }
        )
        table["ranker_version"] = champion["model_version"]
        table["retrieval_version"] = champion_model["model_version"]
        running = running_release(getattr(context.resources, tracking_of)) if task.release else None
        if running is not None:  # a grey release of this task: its challenger re-ranks its arm's users
            state, challenger = running
            their_scorer = load_scorer(challenger.model_uri, challenger.tags.get("model_format", "torch-state"))
            mine = arms(state.experiment, users, task.release.stages[state.stage]) == CHALLENGER
            theirs, their_probabilities = rank_candidates(users[mine], candidates[mine], log_probs[mine], hours[mine],
                                                          probabilities_with(their_scorer))  # fmt: skip
            challenger_table = pd.DataFrame({"user_id": users[mine], "item_ids": list(theirs[:, :k]),
                                             "engagement": list(their_probabilities[:, :k].astype("float32")),
                                             "ranker_version": challenger.version})  # fmt: skip
            table = serve_by_arm(table, challenger_table, state, task.release,
                                 columns=("item_ids", "engagement", "ranker_version"))  # fmt: skip
            table["activity"] = served_activity(table, str(training_sequences))
            context.log.info(f"grey release {state.experiment}: {(table['arm'] == 'challenger').sum():,} users on "
                             f"v{challenger.version}")  # fmt: skip
        elapsed = time.perf_counter() - started
        return dg.Output(
            table,
            metadata={
                "users": len(table),
                "candidates_per_user": task.candidates,
                "top_k": k,
                "users_per_second": round(len(table) / elapsed, 1) if elapsed > 0 else 0.0,
                "ranker_version": champion["model_version"],
                "retrieval_version": champion_model["model_version"],
            },
        )

    return [evaluation, promotion_gate, champion, recommendations]


def _two_stage(
    retrieval_champion: dict,
    examples: pd.DataFrame,
    events: pl.DataFrame,
    day: dt.date,
    training_sequences: UPath,
    item_vocabulary: UPath,
    scorer,
    task: Task,
) -> dict:
    """NDCG@10 of the next-item champion's candidates in its own order and re-ranked by `scorer`,
    against the items each user engaged with on the held-out day."""
    from algo_platform.tasks.engagement.two_stage import champion_candidates, rank_candidates, two_stage_ndcg
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import read_sequences

    holdout = examples[(examples["split"] == "holdout")]
    positives = holdout[holdout["label"] == 1].groupby("user_id")["item_id"].agg(set)
    first_hour = holdout.groupby("user_id")["hour"].min()
    data = read_sequences(str(training_sequences))
    item_ids = read_item_ids(str(item_vocabulary))
    rows, candidates, log_probs = champion_candidates(retrieval_champion, data, item_ids, False, task.candidates)
    users = data.user_ids[rows]
    wanted = np.isin(users, positives.index.to_numpy())
    users, candidates, log_probs = users[wanted], candidates[wanted], log_probs[wanted]

    def probabilities_of(pairs: pd.DataFrame) -> np.ndarray:
        features = candidate_features(events, pl.from_pandas(pairs), day, task.label.events, task.label.complete_ratio)
        return scorer.probabilities(features.to_pandas())

    hours = first_hour.reindex(users).fillna(12).to_numpy()
    reranked, _ = rank_candidates(users, candidates, log_probs, hours, probabilities_of)
    relevant = [positives[user] for user in users]
    result = two_stage_ndcg(relevant, candidates, reranked)
    return {**result, "retrieval_version": retrieval_champion["model_version"]}
