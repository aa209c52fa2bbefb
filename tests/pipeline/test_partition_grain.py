"""A project's partition grain (data.partition: day, week, month): a sparse log over years is
hundreds of partitions; windows, checks, the sensor and backfills follow the grain."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from algo_platform.core.calendar import ProjectCalendar, window_partitions
from algo_platform.core.project import ProjectError
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.importer import import_events
from algo_platform.jobs.automation import scan_landing_zone
from algo_platform.jobs.backfill import request_ingest_backfill, resume_ingest_backfill
from algo_platform.resources.partitions import project_partitions
from tests.support.factories import PROJECT, make_project

MAPPING = {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}
RATING = {"rating": "float64"}
TODAY = dt.date(2026, 12, 5)


def test_weeks_and_months_are_named_by_their_first_day_and_end_when_the_period_ends():
    months = ProjectCalendar(dt.date(1996, 3, 29), grain="month")
    assert months.first == dt.date(1996, 3, 1)
    assert months.period("2024-02-01").days[-1] == "2024-02-29"  # a leap year's February
    assert months.period_of("1999-12-31").key == "1999-12-01"
    assert months.last(TODAY) == dt.date(2026, 11, 1)  # December is still filling
    assert months.is_partition("2026-11-01", TODAY) and not months.is_partition("2026-12-01", TODAY)
    assert "partitions are months" in months.not_a_partition("2024-02-10", TODAY)
    assert "in the partition 2024-02-01" in months.not_a_partition("2024-02-10", TODAY)
    assert "becomes a partition at midnight UTC after it ends, on 2027-01-01" in months.not_a_partition(
        "2026-12-01", TODAY
    )
    assert months.partition_keys("1996-03-29", "1996-06-02") == ["1996-03-01", "1996-04-01", "1996-05-01", "1996-06-01"]
    weeks = ProjectCalendar(dt.date(2026, 11, 4), grain="week")
    assert weeks.first == dt.date(2026, 11, 2) and weeks.period("2026-11-02").days[-1] == "2026-11-08"  # ISO weeks
    note = months.upload_note("2026-12-03", TODAY)
    assert "still filling" in note and "2027-01-01" in note
    assert (
        window_partitions(90, "month") == 3 and window_partitions(3, "week") == 2 and window_partitions(5, "day") == 5
    )


def test_dagster_partitions_match_the_calendar():
    months = project_partitions("1996-03-29", "month")
    keys = months.get_partition_keys(current_time=dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    assert keys[0] == "1996-03-01" and keys[-1] == "2026-11-01" and len(keys) == 369
    weeks = project_partitions("2026-11-04", "week")
    assert weeks.get_partition_keys(current_time=dt.datetime(2026, 12, 5, tzinfo=dt.UTC))[0] == "2026-11-02"


def test_spark_and_tasks_need_days():
    with pytest.raises(ValueError, match="engine spark runs one day per run"):
        make_project(data={"engine": "spark", "partition": "month"})
    with pytest.raises(ValueError, match="need data.partition: day"):
        make_project(data={"partition": "week"}, tasks=[{"name": "ranking", "type": "engagement"}])


def _sparse_ratings(path: Path) -> Path:
    """Ratings on scattered days of four months, none at all in one of them; no watch time column."""
    lines = ["userId,movieId,rating,timestamp"]
    for day in ("2024-01-03", "2024-01-20", "2024-02-14", "2024-04-02", "2024-04-29"):
        for user in range(1, 31):
            for hour in range(3):
                lines.append(f"{user},{(user * 7 + hour * 3) % 40 + 1},4.0,{day}T{10 + hour:02d}:00:00Z")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_month_grain_project_ingests_a_sparse_log_in_one_run_and_trains(tmp_path, settings):
    project = make_project(
        start="2024-01-01",
        data={
            "partition": "month",
            "days_per_run": 12,
            "extra_columns": RATING,
            "feedback": {"column": "rating", "threshold": 2.0},
        },
        training={"window_days": "all", "evaluation": "leave_last_out"},
        model={"family": "gru4rec", "epochs": 1},
    )
    root = settings.layout.project(PROJECT).root
    import_events(_sparse_ratings(tmp_path / "ratings.csv"), root, MAPPING, RATING, "2024-01-01", today=TODAY)
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        ingest = defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2024-01-01",
                "dagster/asset_partition_range_end": "2024-04-01",
            },
        )
        assert ingest.success
        rows = {
            e.materialization.partition: e.materialization.metadata["dagster/row_count"].value
            for e in ingest.get_asset_materialization_events()
            if e.asset_key.path[-1] == "cleaned_events"
        }
        assert rows == {"2024-01-01": 180, "2024-02-01": 90, "2024-03-01": 0, "2024-04-01": 180}
        checks = [c for c in ingest.get_asset_check_evaluations() if c.check_name == "cleaned_events_suite"]
        # No watch time in a ratings log: not checked, and no partition warns for it.
        assert all(c.passed for c in checks if c.partition), [c.description for c in checks if not c.passed]
        summary = next(c for c in checks if c.partition is None)
        assert "not checked (the data has no item_duration_ms, watch_ms)" in summary.description
        retrain = defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
            partition_key="2024-04-01", instance=instance
        )
        assert retrain.success
    assert (Path(root) / "cleaned_events" / "2024-03-01.parquet").exists()

    # The tables are months now: reading them as days would misread them, so a change is refused.
    as_days = make_project(start="2024-01-01", data={"partition": "day", "extra_columns": RATING})
    with pytest.raises(ProjectError, match="tables in .* are stored by month. Set data.partition: month back"):
        build_project_definitions(as_days, settings)


def test_the_sensor_asks_once_per_month_for_the_changed_days(storage_root):
    partitions = project_partitions("2024-01-01", "month")
    for day in ("2024-02-03", "2024-02-17", "2024-03-01"):
        folder = Path(storage_root) / "landing" / "events" / day
        folder.mkdir(parents=True)
        (folder / "e.csv").write_text(f"user_id,item_id,ts\n1,2,{day}T10:00:00Z\n")
    scan = scan_landing_zone(storage_root, None, partitions, settle_seconds=0)
    grouped = scan.by_partition(partitions)
    assert set(grouped) == {"2024-02-01", "2024-03-01"} and grouped["2024-02-01"][1] == 2


def test_a_failed_backfill_resumes_with_only_what_it_did_not_materialize(tmp_path, settings):
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import BulkActionStatus

    project = make_project(start="2024-01-01", data={"partition": "month", "days_per_run": 6})
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        backfill_id, months = request_ingest_backfill(instance, defs, project, "2024-01-15", "2024-06-30")
        assert months == 6
        with pytest.raises(ValueError, match="is still requested: wait for it to end"):
            resume_ingest_backfill(instance, defs, backfill_id)
        # The daemon's record of a backfill that materialized its first two months, then failed.
        failed = instance.get_backfill(backfill_id)
        graph = defs.resolve_asset_graph()
        data = failed.get_asset_backfill_data(graph)
        first_two = {ap for ap in data.target_subset.iterate_asset_partitions() if ap.partition_key < "2024-03-01"}
        assert len(first_two) == 2 * 5
        data = data._replace(materialized_subset=AssetGraphSubset.from_asset_partition_set(first_two, graph))
        failed = failed.with_asset_backfill_data(data, instance, graph).with_status(BulkActionStatus.FAILED)
        instance.update_backfill(failed)
        resumed, missing = resume_ingest_backfill(instance, defs, backfill_id)
        again = instance.get_backfill(resumed)
        assert missing == 4 * 5 and again.tags["dagster/parent_backfill_id"] == backfill_id
        asked = set(again.get_asset_backfill_data(graph).target_subset.iterate_asset_partitions())
        assert {ap.partition_key for ap in asked} == {"2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01"}
        with pytest.raises(ValueError, match="before the first partition"):
            request_ingest_backfill(instance, defs, project, "2023-12-01", "2024-02-01")


def test_following_a_backfill_reports_each_change_until_it_ends():
    from dagster._core.execution.backfill import BulkActionStatus

    from algo_platform.jobs.backfill import BackfillProgress, follow_backfill

    states = iter(
        [
            BackfillProgress(BulkActionStatus.REQUESTED, 0, 0, 8, 0, 0),
            BackfillProgress(BulkActionStatus.REQUESTED, 0, 0, 8, 0, 0),
            BackfillProgress(BulkActionStatus.REQUESTED, 4, 0, 8, 1, 0),
            BackfillProgress(BulkActionStatus.FAILED, 4, 4, 8, 2, 1),
        ]
    )
    clock = iter(range(100))
    reports, stalls = [], []
    final = follow_backfill(
        lambda: next(states),
        lambda p, s: reports.append((p.done, s)),
        clock=lambda: next(clock),
        sleep=lambda _: None,
        stalled=stalls.append,
        stall_seconds=2,
    )
    assert [done for done, _ in reports] == [0, 4, 4] and final.finished and not final.complete
    assert len(stalls) == 1  # no run had started yet: said once (is the daemon running?)


def test_project_new_starts_a_sparse_log_by_month(tmp_path, projects_dir):
    from click.testing import CliRunner

    from algo_platform.cli import main as cli
    from algo_platform.core.project import load_project

    workspace = tmp_path / "workspace.yaml"
    args = ["project", "new", "ratings", "--partitions-start", "1996-03-29", "--partition", "month"]
    created = CliRunner().invoke(cli, [*args, "--workspace", str(workspace)])
    assert created.exit_code == 0, created.output
    project = load_project(Path(projects_dir) / "ratings")
    assert project.data.partition == "month" and project.calendar.first == dt.date(1996, 3, 1)
