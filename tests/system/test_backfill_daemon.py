"""A history import backfilled by the real daemon: few runs, every day (empty ones too) ingested."""

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from tests.support.factories import PROJECT
from tests.support.processes import BIN, WORKSPACE, Processes, cli, temporary_platform, wait_for

DAYS = 60
PER_RUN = 30


def test_the_daemon_backfills_an_imported_history_in_range_runs(tmp_path):
    env, home = temporary_platform(tmp_path, window_days=2)
    project_file = tmp_path / "projects" / PROJECT / "project.yaml"
    project_file.write_text(project_file.read_text().replace("days_per_run: 1 ", f"days_per_run: {PER_RUN} ", 1))
    # A sparse log: events on every third day of March and April 2024.
    source = tmp_path / "history.csv"
    lines = ["uid,iid,when"]
    for day in range(0, DAYS, 3):
        stamp = 1_709_251_200 + day * 86_400  # 2024-03-01T00:00:00Z + day
        lines += [f"{user},{user + day},{stamp + user * 60}" for user in range(1, 6)]
    source.write_text("\n".join(lines) + "\n")
    mapping = ["--map", "user_id=uid", "--map", "item_id=iid", "--map", "ts=when"]
    imported = cli(env, "algo-platform", "import", str(source), "--project", PROJECT, *mapping)
    assert "imported 100 rows on 20 days (2024-03-01..2024-04-27)" in imported
    queued = cli(env, "algo-platform", "backfill", "--project", PROJECT, "--from", "2024-03-01", "--to", "2024-04-29")
    assert f"ingest of {DAYS} days (2024-03-01..2024-04-29), up to {PER_RUN} per run (2 runs)" in queued

    processes = Processes(env, tmp_path)
    try:
        processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])

        def finished() -> PartitionBackfill | None:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                (backfill,) = instance.get_backfills()
                return backfill if backfill.status != BulkActionStatus.REQUESTED else None

        backfill = wait_for(finished, "the backfill to finish", tmp_path)
    finally:
        processes.stop_all()
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert len(runs) == DAYS // PER_RUN and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert all(r.tags["algo_platform/project"] == PROJECT for r in runs)
        cleaned = instance.get_materialized_partitions(dg.AssetKey([PROJECT, "cleaned_events"]))
    assert len(cleaned) == DAYS  # the days without events too, as empty days
