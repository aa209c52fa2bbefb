"""champion_model and user_recommendations: promotion behind the gate, and what services consume."""

import time

import dagster as dg
import pandas as pd
from upath import UPath

from algo_platform.assets.evaluation import split_report
from algo_platform.core.project import NEXT_ITEM_TASK, Release
from algo_platform.evaluation.promotion import PromotionPolicy, promotion_decision
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.promotion import PromotionGate
from algo_platform.resources.tracking import ExperimentTracking, ModelVersion


def _descriptor_of(version: ModelVersion) -> dict:
    """What champion_model records for a registered version, from the lineage tags it was registered with."""
    tags = version.tags
    return {
        "model_version": version.version,
        "model_uri": version.model_uri,
        "trained_on_partition": tags.get("dagster_partition"),
        "training_sequences": tags.get("training_sequences"),
        "code_version": tags.get("code_version"),
        "trained_by_run": tags.get("dagster_run_id"),
        "mlflow_run_id": version.run_id,
        "model_format": tags.get("model_format", "torch-state"),
        "family": tags.get("family", "unknown"),
        "source": tags.get("source", "unknown"),
    }


def _never_backwards(candidate_day: str, current: ModelVersion | None) -> str | None:
    """Why a model trained for `candidate_day` may not replace `current`, or None if it may."""
    if current is None:
        return None
    current_day = current.tags.get("dagster_partition", "")
    if candidate_day < current_day:
        return (
            f"trained for {candidate_day}, before the champion's {current_day} (v{current.version}): "
            "a backfill never moves the champion backwards"
        )
    return None


def champion_model(
    context: dg.AssetExecutionContext,
    sequence_model: dict,
    evaluation_report: pd.DataFrame,
    experiment_tracking: ExperimentTracking,
    promotion: PromotionGate,
) -> dg.Output[dict]:
    """The model serving recommendations: the new model if it passes the promotion gate, else the champion kept.

    The decision is made here, from the evaluation report, however the asset is launched (with
    its job, alone from the UI, a backfill): the `promotion_gate` check reports the same decision
    but cannot be the only guard, since a check only stops steps of its own run."""
    overall, segments = split_report(evaluation_report)
    return choose_champion(context, sequence_model, overall, segments, experiment_tracking, promotion.policy())


def choose_champion(
    context: dg.AssetExecutionContext,
    candidate: dict,
    overall: pd.DataFrame,
    segments: pd.DataFrame,
    tracking: ExperimentTracking,
    policy: PromotionPolicy,
    release: Release | None = None,
    task: str = NEXT_ITEM_TASK,
) -> dg.Output[dict]:
    """Promote `candidate` (a model asset's descriptor) if the task type's rule says so and it does not
    move the champion backwards; else keep the champion. Every task type's champion asset is this.
    With a `release` plan (project.yaml's `release:`), a candidate that passes becomes the challenger
    of a grey release instead, while a champion serves (assets/release.py)."""
    grey_release = release is not None
    current = tracking.champion()
    decision = promotion_decision(overall, segments, policy)
    reasons = list(decision.reasons)
    backwards = _never_backwards(candidate["partition"], current)
    promote = decision.promote and backwards is None
    if backwards and decision.promote:
        reasons.append(backwards)

    running = None
    if promote and grey_release and current is not None:
        from algo_platform.assets.release import open_release

        running = open_release(tracking)
        if running is not None:  # one release at a time: the candidate may try again at the next retrain
            promote = False
            reasons.append(f"a grey release is {running.status} ({running.experiment}); it ends before another starts")
    if promote and grey_release and current is not None:
        from algo_platform.assets.release import start_release

        state = start_release(tracking, context.asset_key.path[0], candidate["model_version"], context.partition_key,
                              release.stages[0], task)  # fmt: skip
        reasons.append(f"released to {state.experiment}: a share of users first, widened by their feedback")
        served = _descriptor_of(current)
        outcome = "challenger"
    elif promote:
        version = candidate["model_version"]
        tracking.promote(version)
        tracking.set_version_tags(
            version,
            {
                "promoted_on": context.partition_key,
                "promoted_by_run": context.run_id,
                "previous_champion": current.version if current else "none",
            },
        )
        served = {
            "model_version": version,
            "model_uri": candidate["model_uri"],
            "trained_on_partition": candidate["partition"],
            "training_sequences": candidate.get("training_sequences"),
            "code_version": candidate["code_version"],
            "trained_by_run": candidate["run_id"],
            "mlflow_run_id": candidate["mlflow_run_id"],
            "hyperparameters": candidate["hyperparameters"],
            "model_format": candidate.get("model_format", "torch-state"),
            "family": candidate.get("family", "unknown"),
            "source": candidate.get("source", "unknown"),
        }
    elif current is None:
        raise dg.Failure(
            description=(
                f"no champion to serve: the first model (v{candidate['model_version']}) was not promoted ("
                + "; ".join(reasons)
                + "). Retrain with other hyper-parameters or more data."
            )
        )
    else:
        served = _descriptor_of(current)
        context.log.info(f"kept champion v{current.version}: " + "; ".join(reasons))

    if not (promote and grey_release and current is not None):
        outcome = "promoted" if promote else "kept"
    champion = {
        **served,
        "outcome": outcome,
        "candidate_version": candidate["model_version"],
        "previous_version": current.version if current else None,
        "reasons": reasons,
    }
    return dg.Output(
        champion,
        metadata={
            "outcome": outcome,
            "champion_version": f"{tracking.registered_model_name} v{served['model_version']}",
            "champion_family": served.get("family", "unknown"),
            "candidate_version": candidate["model_version"],
            "previous_champion": current.version if current else "none",
            "why": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in reasons)),
            "lineage": dg.MetadataValue.json({k: v for k, v in champion.items() if k != "reasons"}),
            "mlflow_run": dg.MetadataValue.url(tracking.run_url(served["mlflow_run_id"])),
        },
    )


class RecommendationsConfig(dg.Config):
    top_k: int = 20


def user_recommendations(
    context: dg.AssetExecutionContext,
    config: RecommendationsConfig,
    champion_model: dict,
    training_sequences: UPath,
    item_vocabulary: UPath,
    experiment_tracking: ExperimentTracking,
    release: Release | None = None,
) -> dg.Output[pd.DataFrame]:
    """Top-K items for every active user from the champion (during a grey release, from their arm's
    model), for downstream services to serve."""
    from algo_platform.assets.release import running_release, serve_by_arm, served_activity
    from algo_platform.evaluation.scoring import recommend

    started = time.perf_counter()

    def lists_of(model_uri: str, model_format: str, version: str, family: str) -> pd.DataFrame:
        table = recommend(model_uri, str(training_sequences), str(item_vocabulary), config.top_k, model_format)
        # Which model each list came from: one registered model per task, so the version and its family.
        return table.assign(model_version=version, model_family=family)

    table = lists_of(champion_model["model_uri"], champion_model.get("model_format", "torch-state"),
                     champion_model["model_version"], champion_model.get("family", "unknown"))  # fmt: skip
    running = running_release(experiment_tracking) if release is not None else None
    if running is not None:
        state, challenger = running
        theirs = lists_of(challenger.model_uri, challenger.tags.get("model_format", "torch-state"),
                          challenger.version, challenger.tags.get("family", "unknown"))  # fmt: skip
        table = serve_by_arm(table, theirs, state, release)
        table["activity"] = served_activity(table, str(training_sequences))
        context.log.info(f"grey release {state.experiment}: {(table['arm'] == 'challenger').sum():,} users on v"
                         f"{challenger.version}, {(table['arm'] == 'champion').sum():,} on the champion")  # fmt: skip
    elapsed = time.perf_counter() - started
    users_per_second = len(table) / elapsed if elapsed > 0 else 0.0
    context.log.info(f"scored {len(table):,} users in {elapsed:.2f} s ({users_per_second:,.0f} users/s)")
    return dg.Output(
        table,
        metadata={
            "users": len(table),
            "top_k": config.top_k,
            "users_per_second": round(users_per_second, 1),
            "model_version": champion_model["model_version"],
            "model_family": champion_model.get("family", "unknown"),
            "preview": dg.MetadataValue.md(
                table.head(5)
                .assign(item_ids=table["item_ids"].head(5).map(lambda ids: ", ".join(map(str, ids[:5])) + " ..."))
                .drop(columns="scores")
                .to_markdown(index=False)
            ),
        },
    )


def build_serving_assets(partitions: PeriodPartitions, release: Release | None = None) -> list:
    """champion_model and user_recommendations of one project (and release_report with a `release:` plan)."""

    def released_champion_model(
        context: dg.AssetExecutionContext,
        sequence_model: dict,
        evaluation_report: pd.DataFrame,
        experiment_tracking: ExperimentTracking,
        promotion: PromotionGate,
    ) -> dg.Output[dict]:
        """The model serving recommendations; with the project's `release:` plan, a new model that passes
        the gate becomes the challenger of a grey release (the champion serves the other users)."""
        overall, segments = split_report(evaluation_report)
        return choose_champion(context, sequence_model, overall, segments, experiment_tracking, promotion.policy(),
                               release)  # fmt: skip

    champion = released_champion_model if release is not None else champion_model

    @dg.asset(name="user_recommendations", partitions_def=partitions, group_name="serving",
              kinds={"pytorch", "parquet"})  # fmt: skip
    def recommendations(
        context: dg.AssetExecutionContext,
        config: RecommendationsConfig,
        champion_model: dict,
        training_sequences: UPath,
        item_vocabulary: UPath,
        experiment_tracking: ExperimentTracking,
    ) -> dg.Output[pd.DataFrame]:
        """Top-K items for every active user from the champion (during a grey release, from their arm's
        model), for downstream services to serve."""
        return user_recommendations(context, config, champion_model, training_sequences, item_vocabulary,
                                    experiment_tracking, release)  # fmt: skip

    assets = [
        dg.asset(
            name="champion_model", partitions_def=partitions, group_name="evaluation",
            io_manager_key="json_io_manager", kinds={"mlflow"},
        )(champion),
        recommendations,
    ]  # fmt: skip
    if release is not None:
        from algo_platform.assets.release import build_release_report

        assets.append(build_release_report(partitions, release))
    return assets
