"""Years of a sparse ratings log, from file to a served champion, through the real daemon.

`python -m benchmarks.sparse_history [--grain month] [--per-run auto|N] [--busy]` prints one line per
stage and writes results/sparse_history.json. A generated explicit-ratings log shaped like public
ones (benchmarks/ratings_log.py: 610 users, a catalogue of about 10,000 titles, 22 years from
1996-03-29, ratings on about half of the days, about 100,000 ratings) goes into a project made by
`algo-platform project new`, as a new team would set it up (column map, the rating as feedback,
`window_days: all`, `evaluation: leave_last_out`, `data.partition: <grain>`). Then, with the
shipped dagster_home/dagster.yaml and `dagster-daemon run` (the platform set up as the daemon
tests set it up: tests/support/processes.py, so this needs the dev extra):

- `algo-platform import` of the CSV;
- `algo-platform backfill --wait` over the log's whole span;
- the retrain job for the last partition (`dagster job launch`), until the champion is registered.

Figures: wall time of each stage and in all, runs and failed runs, and event-log rows per imported
rating (every event the instance stored for the runs). `--busy` keeps one CPU-bound process per
core running beside it all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import subprocess
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "sparse_history.json"


def _spin() -> None:
    while True:
        pass


def main() -> None:
    import dagster as dg
    import yaml

    from benchmarks.ratings_log import RatingsShape, write_ratings_csv
    from tests.support.factories import PROJECT
    from tests.support.processes import BIN, WORKSPACE, Processes, cli, queue_retraining, temporary_platform

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grain", choices=["day", "week", "month"], default="month")
    parser.add_argument(
        "--per-run",
        type=lambda value: value if value == "auto" else int(value),
        default="auto",
        help="data.days_per_run: partitions per backfill run, or auto (the default a new project gets)",
    )
    parser.add_argument("--busy", action="store_true", help="a CPU-bound process per core beside the platform")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(multiprocessing.cpu_count())]
    for spinner in spinners if args.busy else []:
        spinner.start()
    figures: dict[str, object] = {"grain": args.grain, "per_run": args.per_run, "busy": args.busy}
    try:
        with tempfile.TemporaryDirectory() as folder:
            scratch = Path(folder)
            env, home = temporary_platform(scratch)
            project_file = scratch / "projects" / PROJECT / "project.yaml"
            project = yaml.safe_load(project_file.read_text())
            project["partitions_start"] = dt.date(1996, 3, 29)
            project["data"].update(
                partition=args.grain,
                days_per_run=args.per_run,
                column_map={"user_id": "userId", "item_id": "movieId", "ts": "timestamp"},
                extra_columns={"rating": "float64"},
                feedback={"column": "rating", "threshold": 3.5},
                interaction_types=["play"],
            )
            project["training"] = {"window_days": "all", "evaluation": "leave_last_out"}
            project["model"].update(epochs=args.epochs)
            project_file.write_text(yaml.safe_dump(project, sort_keys=False))

            shape = RatingsShape(users=610, items=9_724, start=dt.date(1996, 3, 29), years=22)
            source = write_ratings_csv(
                scratch / "ratings.csv", RatingsShape(**{**shape.__dict__, "median_ratings_per_user": 110})
            )
            began = time.monotonic()
            imported = cli(env, "algo-platform", "import", str(source), "--project", PROJECT)
            figures["import_s"] = round(time.monotonic() - began, 1)
            first_line = imported.splitlines()[0]
            figures["imported"] = first_line
            ratings = int(first_line.split()[1].replace(",", ""))
            span = first_line.split("(")[1].split(")")[0].split("..")
            processes = Processes(env, scratch)
            try:
                processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
                started = time.monotonic()
                waited = subprocess.run(
                    [
                        str(BIN / "algo-platform"),
                        "backfill",
                        "--project",
                        PROJECT,
                        "--from",
                        span[0],
                        "--to",
                        span[1],
                        "--wait",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                figures["backfill_s"] = round(time.monotonic() - started, 1)
                figures["backfill_output_tail"] = waited.stdout.splitlines()[-3:] + waited.stderr.splitlines()[-3:]
                last = dt.date.fromisoformat(span[1])
                key = {"day": last, "week": last - dt.timedelta(days=last.weekday()), "month": last.replace(day=1)}
                partition = key[args.grain].isoformat()
                started = time.monotonic()
                queue_retraining(env, PROJECT, partition)
                while True:
                    with dg.DagsterInstance.from_config(str(home)) as instance:
                        (run,) = instance.get_runs(dg.RunsFilter(job_name=f"{PROJECT}_retrain_job"), limit=1)
                    if run.is_finished:
                        break
                    time.sleep(2)
                figures["retrain_s"] = round(time.monotonic() - started, 1)
                figures["retrain_status"] = run.status.value
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    logs = instance.all_logs(run.run_id)
                figures["retrain_failures"] = [
                    f"{e.step_key}: {e.dagster_event.step_failure_data.error.message.splitlines()[0][:300]}"
                    for e in logs
                    if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
                ]
                evaluations = [
                    e.dagster_event.event_specific_data
                    for e in logs
                    if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
                ]
                figures["retrain_checks"] = [f"{c.check_name}: {c.description}" for c in evaluations if not c.passed]
            finally:
                processes.stop_all()
            figures["total_s"] = round(time.monotonic() - began, 1)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = instance.get_runs()
                figures["runs"] = len(runs)
                figures["failed_runs"] = sum(r.status == dg.DagsterRunStatus.FAILURE for r in runs)
                events = sum(len(instance.all_logs(r.run_id)) for r in runs)
                figures["event_log_rows"] = events
                figures["event_log_rows_per_rating"] = round(events / ratings, 4)
                figures["partitions_cleaned"] = len(
                    instance.get_materialized_partitions(dg.AssetKey([PROJECT, "cleaned_events"]))
                )
                figures["ratings"] = ratings
    finally:
        for spinner in spinners:
            if spinner.is_alive():
                spinner.terminate()
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps([*previous, figures], indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
