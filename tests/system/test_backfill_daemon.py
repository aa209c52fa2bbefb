"""A history import backfilled by the real daemon: few runs, every day (empty ones too) ingested."""

import subprocess

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

from tests.support.factories import PROJECT
from tests.support.processes import BIN, DEADLINE_SECONDS, WORKSPACE, Processes, cli, temporary_platform

DAYS = 20
PER_RUN = 10


def test_the_daemon_backfills_an_imported_history_in_range_runs(tmp_path):
    env, home = temporary_platform(tmp_path, window_days=2)
    project_file = tmp_path / "projects" / PROJECT / "project.yaml"
    project_file.write_text(project_file.read_text().replace("days_per_run: auto ", f"days_per_run: {PER_RUN} ", 1))
    # A sparse log: events on every third day of March 2024's first 20 days.
    source = tmp_path / "history.csv"
    lines = ["uid,iid,when"]
    for day in range(0, DAYS, 3):
        stamp = 1_709_251_200 + day * 86_400  # 2024-03-01T00:00:00Z + day
        lines += [f"{user},{user + day},{stamp + user * 60}" for user in range(1, 6)]
    source.write_text("\n".join(lines) + "\n")
    mapping = ["--map", "user_id=uid", "--map", "item_id=iid", "--map", "ts=when"]
    imported = cli(env, "algo-platform", "import", str(source), "--project", PROJECT, *mapping)
    assert "imported 35 rows on 7 days (2024-03-01..2024-03-19)" in imported
    processes = Processes(env, tmp_path)
    try:
        processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
        # --wait follows the backfill the daemon runs until it ends, and says how far it is.
        span = ["--from", "2024-03-01", "--to", "2024-03-20"]
        command = [str(BIN / "algo-platform"), "backfill", "--project", PROJECT, *span, "--wait"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=DEADLINE_SECONDS)
        # A retrain whose 2-day window holds one event per user: nothing to train on. The command
        # follows the run the daemon launched and says which step failed and why.
        retrain = [str(BIN / "algo-platform"), "retrain", "--project", PROJECT, "--partition", "2024-03-19", "--wait"]
        failed = subprocess.run(retrain, env=env, capture_output=True, text=True, timeout=DEADLINE_SECONDS)
    finally:
        processes.stop_all()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"retrain of {PROJECT} for 2024-03-19 failed: run " in failed.stderr, failed.stderr
    assert "step " in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    waited = done.stdout
    assert "Warning" not in done.stderr, done.stderr  # no library's notes on the terminal
    assert f"ingest of {DAYS} days (2024-03-01..2024-03-20), up to {PER_RUN} per run (2 runs)" in waited
    assert f"completed_success: {5 * DAYS}/{5 * DAYS} asset partitions (100%)" in waited
    assert "every partition materialized" in waited
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (backfill,) = [b for b in instance.get_backfills() if "ingest" in (b.title or "")]
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert len(runs) == DAYS // PER_RUN and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert all(r.tags["algo_platform/project"] == PROJECT for r in runs)
        cleaned = instance.get_materialized_partitions(dg.AssetKey([PROJECT, "cleaned_events"]))
    assert len(cleaned) == DAYS  # the days without events too, as empty days
