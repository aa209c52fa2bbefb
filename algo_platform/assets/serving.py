"""champion_model and user_recommendations: promotion behind the gate, and what services consume."""

import time

import dagster as dg
import pandas as pd
from upath import UPath

from algo_platform.assets.evaluation import split_report
from algo_platform.assets.partitions import daily_partitions
from algo_platform.promotion import promotion_decision
from algo_platform.resources.promotion import PromotionGate
from algo_platform.resources.tracking import ExperimentTracking


@dg.asset(partitions_def=daily_partitions, group_name="evaluation", io_manager_key="json_io_manager", kinds={"mlflow"})
def champion_model(
    context: dg.AssetExecutionContext,
    sequence_model: dict,
    evaluation_report: pd.DataFrame,
    experiment_tracking: ExperimentTracking,
    promotion: PromotionGate,
) -> dg.Output[dict]:
    """The model serving recommendations: the new model, once it has passed the promotion gate."""
    previous = experiment_tracking.champion()
    overall, segments = split_report(evaluation_report)
    decision = promotion_decision(overall, segments, promotion.policy())
    version = sequence_model["model_version"]
    experiment_tracking.promote(version)
    experiment_tracking.set_version_tags(
        version,
        {
            "promoted_on": context.partition_key,
            "promoted_by_run": context.run_id,
            "previous_champion": previous.version if previous else "none",
        },
    )
    champion = {
        "model_version": version,
        "model_uri": sequence_model["model_uri"],
        "previous_version": previous.version if previous else None,
        "reasons": decision.reasons,
        # Lineage, all in one place: data, code, hyper-parameters, the run that trained it.
        "trained_on_partition": sequence_model["partition"],
        "training_sequences": sequence_model["training_sequences"],
        "code_version": sequence_model["code_version"],
        "hyperparameters": sequence_model["hyperparameters"],
        "trained_by_run": sequence_model["run_id"],
        "mlflow_run_id": sequence_model["mlflow_run_id"],
    }
    return dg.Output(
        champion,
        metadata={
            "champion_version": f"{experiment_tracking.registered_model_name} v{version}",
            "previous_champion": previous.version if previous else "none",
            "why": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in decision.reasons)),
            "lineage": dg.MetadataValue.json({k: v for k, v in champion.items() if k not in ("reasons",)}),
            "mlflow_run": dg.MetadataValue.url(experiment_tracking.run_url(sequence_model["mlflow_run_id"])),
        },
    )


class RecommendationsConfig(dg.Config):
    top_k: int = 20


@dg.asset(partitions_def=daily_partitions, group_name="serving", kinds={"pytorch", "parquet"})
def user_recommendations(
    context: dg.AssetExecutionContext,
    config: RecommendationsConfig,
    champion_model: dict,
    training_sequences: UPath,
    item_vocabulary: UPath,
) -> dg.Output[pd.DataFrame]:
    """Top-K items for every active user from the champion, for downstream services to serve."""
    from algo_platform.scoring import recommend

    started = time.perf_counter()
    table = recommend(champion_model["model_uri"], str(training_sequences), str(item_vocabulary), config.top_k)
    elapsed = time.perf_counter() - started
    table["model_version"] = champion_model["model_version"]
    users_per_second = len(table) / elapsed if elapsed > 0 else 0.0
    context.log.info(f"scored {len(table):,} users in {elapsed:.2f} s ({users_per_second:,.0f} users/s)")
    return dg.Output(
        table,
        metadata={
            "users": len(table),
            "top_k": config.top_k,
            "users_per_second": round(users_per_second, 1),
            "model_version": champion_model["model_version"],
            "preview": dg.MetadataValue.md(
                table.head(5)
                .assign(item_ids=table["item_ids"].head(5).map(lambda ids: ", ".join(map(str, ids[:5])) + " ..."))
                .drop(columns="scores")
                .to_markdown(index=False)
            ),
        },
    )
