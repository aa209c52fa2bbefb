"""The demo: synthetic data through the whole asset graph on the instance in DAGSTER_HOME."""

from __future__ import annotations

import time
from collections.abc import Callable

import click
import dagster as dg
import pandas as pd

from algo_platform.cli.options import load_project_named, project_option
from algo_platform.core import environment
from algo_platform.core.project import Project
from algo_platform.core.settings import Settings, load_settings
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate_for_project

# The demo prints its own summary; Dagster's per-event debug log would bury it.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == asset:
            return {key: value.value for key, value in event.materialization.metadata.items()}
    raise KeyError(asset)


def run_demo(
    settings: Settings,
    project: Project,
    days: int,
    events_per_day: int,
    seed: int,
    defect_rate: float,
    epochs: int | None,
    echo: Callable[[str], None] = print,
) -> dict[str, float]:
    started = time.perf_counter()
    root = settings.layout.project(project.name).root
    written = generate_for_project(root, project, days, events_per_day, seed, defect_rate)
    echo(f"generated {sum(d.rows for d in written):,} events for {written[0].day} .. {written[-1].day}")

    defs = build_project_definitions(project, settings)
    instance = dg.DagsterInstance.get()
    ingest = defs.resolve_job_def(f"{project.name}_ingest_job")
    rows = []
    for day in written:
        result = ingest.execute_in_process(partition_key=day.day, instance=instance, run_config=QUIET)
        cleaned = _materialization_metadata(result, "cleaned_events")
        rows.append(
            {
                "day": day.day,
                "rows_in": cleaned["rows_in"],
                "kept": cleaned["rows_kept"],
                "dropped": cleaned["rows_dropped"],
            }
        )
        echo(f"ingested {day.day}: kept {cleaned['rows_kept']:,} of {cleaned['rows_in']:,} rows")

    run_config = {**QUIET, "ops": {"sequence_model": {"config": {"epochs": epochs}}}} if epochs else QUIET
    retrain = defs.resolve_job_def(f"{project.name}_retrain_job")
    # A model that does not beat the champion is stopped by the promotion gate (a blocking check):
    # that ends the run as failed on purpose, and the demo reports why.
    result = retrain.execute_in_process(
        partition_key=written[-1].day, instance=instance, run_config=run_config, raise_on_error=False
    )
    model = _materialization_metadata(result, "sequence_model")
    report = _materialization_metadata(result, "evaluation_report")

    echo("")
    echo(pd.DataFrame(rows).to_string(index=False))
    echo("")
    summary = pd.DataFrame(
        [
            {"scorer": "sequence_model", "HR@10": report["model_hr@10"], "NDCG@10": report["model_ndcg@10"]},
            {"scorer": "popularity", "HR@10": report["popularity_hr@10"], "NDCG@10": report["popularity_ndcg@10"]},
        ]
    )
    echo(summary.round(4).to_string(index=False))
    echo(
        f"\nHR@10 lift over popularity: {report['hr@10_lift_over_popularity']:.2f}x "
        f"on {report['evaluated_targets']:,} held-out next items of {written[-1].day}"
    )
    echo(f"model:   {report['model_uri']}")
    echo(f"report:  {report['report_html']}")
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate")
    if gate.passed:
        champion = _materialization_metadata(result, "champion_model")
        recommendations = _materialization_metadata(result, "user_recommendations")
        path = settings.layout.project(project.name).table("user_recommendations", written[-1].day)
        echo(f"champion: {champion['champion_version']} ({gate.description})")
        echo(
            f"recommendations: {recommendations['users']:,} users, top {recommendations['top_k']} each, "
            f"{recommendations['users_per_second']:,.0f} users/s -> {path}"
        )
    else:
        echo(f"champion: unchanged, the new model was not promoted ({gate.description})")
    echo(f"trained on {model['device']} in {model['epochs']} epochs; final loss {model['final_loss']:.3f}")
    for task in project.tasks:
        _echo_task(result, task.name, echo)
    echo(f"demo finished in {time.perf_counter() - started:.0f} s; `make dev` shows it all in the Dagster UI")
    return {"model_hr@10": report["model_hr@10"], "popularity_hr@10": report["popularity_hr@10"]}


def _echo_task(result: dg.ExecuteInProcessResult, task: str, echo) -> None:
    """One line per further task: its AUC against the baselines, the two-stage NDCG, the champion."""
    names = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    if f"{task}_evaluation" not in names:
        echo(f"{task}: not evaluated (see the run's errors above)")
        return
    evaluation = _materialization_metadata(result, f"{task}_evaluation")
    line = (
        f"{task}: AUC {evaluation['model_auc']:.4f} (item rate {evaluation['item_rate_auc']:.4f}, logistic "
        f"regression {evaluation['logistic_regression_auc']:.4f}); two-stage NDCG@10 "
        f"{evaluation['two_stage_ndcg@10']:.4f} vs retrieval alone {evaluation['retrieval_ndcg@10']:.4f}"
    )
    if f"{task}_champion" in names:
        champion = _materialization_metadata(result, f"{task}_champion")
        line += f"; {champion['outcome']}: {champion['champion_version']}"
    else:
        line += "; no champion (the first model was not promoted)"
    echo(line)


@click.command()
@click.option("--days", default=7, show_default=True, help="Days of data; the last one is held out for evaluation.")
@click.option("--events-per-day", default=40_000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--defect-rate", default=0.01, show_default=True)
@click.option("--epochs", default=None, type=int, help="Training epochs (default: the project's).")
@project_option
def demo(days: int, events_per_day: int, seed: int, defect_rate: float, epochs: int | None, project_name: str) -> None:
    """Generate data, materialize a project's whole asset graph for the latest day, print the results."""
    if not environment.read("DAGSTER_HOME"):
        raise click.UsageError("DAGSTER_HOME is not set; `make demo` sets it to ./dagster_home")
    project, settings = load_project_named(project_name), load_settings()
    if project.data.partition != "day":
        raise click.UsageError(
            f"{project.name} is partitioned by {project.data.partition}: the demo generates and ingests days; "
            "for a log by weeks or months use `algo-platform import` and `algo-platform backfill --wait`"
        )
    window = project.training.window_days
    needed = 2 if window == "all" else window  # one day to train on and one to hold out, at least
    if days < needed:
        raise click.UsageError(
            f"--days {days} is shorter than {project.name}'s training window of {needed} days "
            f"(training.window_days in projects/{project.name}/project.yaml): use --days {needed} or more"
        )
    if window != "all" and days > window:
        click.echo(f"note: only the last {window} days form the training window")
    run_demo(settings, project, days, events_per_day, seed, defect_rate, epochs, echo=click.echo)
