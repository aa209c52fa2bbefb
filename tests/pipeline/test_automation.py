import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from algo_platform.core.layout import ProjectLayout
from algo_platform.ingest.upload import upload_event_file
from algo_platform.jobs import automation
from algo_platform.jobs.automation import SETTLE_SECONDS, build_automation
from algo_platform.jobs.project_jobs import build_jobs
from algo_platform.resources.partitions import project_partitions
from algo_platform.resources.storage import PlatformStorage
from tests.support.factories import PROJECT, make_project

TEAM = make_project()
ingest_job, retrain_job = build_jobs(TEAM, project_partitions(TEAM.partitions_start))
nightly_retraining, landing_zone_sensor = build_automation(TEAM, ingest_job, retrain_job)


def tick(storage_root: str, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={"storage": PlatformStorage(root=storage_root)})
    return landing_zone_sensor(context)


@pytest.fixture(autouse=True)
def settled(monkeypatch):
    """Ticks happen after files settle, as they would between real ticks (tests say otherwise)."""
    monkeypatch.setattr(automation, "_now_ns", lambda: time.time_ns() + (SETTLE_SECONDS + 5) * 1_000_000_000)


def drop(
    storage_root: str, day: str, name: str, content: str = "user_id,item_id,ts\n1,2,2026-11-20T00:00:00Z\n"
) -> Path:
    folder = Path(ProjectLayout(storage_root).landing_day(day))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content)
    return folder / name


def requested(result: dg.SensorResult) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result.run_requests}


def test_one_run_per_day_with_new_files_and_nothing_twice(storage_root):
    drop(storage_root, "2026-11-19", "a.csv")
    drop(storage_root, "2026-11-20", "b.csv")
    drop(storage_root, "2026-11-20", "c.csv")
    first = tick(storage_root, None)
    assert set(requested(first)) == {"2026-11-19", "2026-11-20"}
    assert all(r.job_name in (None, f"{PROJECT}_ingest_job") for r in first.run_requests)
    assert first.run_requests[1].tags["algo-platform/landing-files"] == "2"

    again = tick(storage_root, first.cursor)
    assert again.run_requests == []

    # A re-evaluated tick (same cursor as before) asks with the same run keys, which Dagster
    # de-duplicates, so a daemon restart cannot ingest twice.
    assert requested(tick(storage_root, None)) == requested(first)


def test_a_late_file_for_an_older_day_requests_that_day(storage_root):
    drop(storage_root, "2026-11-10", "old.csv")
    drop(storage_root, "2026-11-20", "new.csv")
    cursor = tick(storage_root, None).cursor
    drop(storage_root, "2026-11-10", "late.csv")
    result = tick(storage_root, cursor)
    assert list(requested(result)) == ["2026-11-10"]


def test_reuploading_an_identical_file_requests_nothing(storage_root, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text("user_id,item_id,ts\n1,2,2026-11-20T10:00:00Z\n")
    upload_event_file(source, "2026-11-20", {}, storage_root)
    cursor = tick(storage_root, None).cursor
    assert upload_event_file(source, "2026-11-20", {}, storage_root).already_present
    assert tick(storage_root, cursor).run_requests == []


def test_a_file_rewritten_in_place_after_it_was_ingested_requests_its_day_again(storage_root):
    """A writer appending in chunks: the folder's time does not change, the file's does."""
    path = drop(storage_root, "2026-11-20", "chunked.csv", "user_id,item_id,ts\n1,2,2026-11-20T00:00:00Z\n")
    folder_time = os.stat(path.parent).st_mtime_ns
    first = tick(storage_root, None)
    with path.open("a") as file:
        file.write("2,3,2026-11-20T01:00:00Z\n")
    os.utime(path, ns=(time.time_ns() + 1_000_000_000,) * 2)  # a later write, even on a coarse clock
    assert os.stat(path.parent).st_mtime_ns == folder_time
    second = tick(storage_root, first.cursor)
    assert list(requested(second)) == ["2026-11-20"]
    assert requested(second)["2026-11-20"] != requested(first)["2026-11-20"]


def test_a_file_still_being_written_waits_until_it_settles(storage_root, monkeypatch):
    drop(storage_root, "2026-11-19", "done.csv")
    monkeypatch.setattr(automation, "_now_ns", time.time_ns)  # the tick comes right after the write
    drop(storage_root, "2026-11-20", "growing.csv")
    early = tick(storage_root, None)
    assert list(requested(early)) == []  # done.csv was also written just now
    monkeypatch.setattr(automation, "_now_ns", lambda: time.time_ns() + (SETTLE_SECONDS + 1) * 1_000_000_000)
    assert set(requested(tick(storage_root, early.cursor))) == {"2026-11-19", "2026-11-20"}


@pytest.mark.parametrize("bad_day", ["2099-01-01", "2023-12-31", "today"])
def test_a_folder_that_is_not_a_partition_never_stops_the_other_days(storage_root, bad_day):
    bad_day = dt.datetime.now(dt.UTC).date().isoformat() if bad_day == "today" else bad_day
    drop(storage_root, bad_day, "early.csv")
    drop(storage_root, "2026-11-20", "good.csv")
    result = tick(storage_root, None)
    assert list(requested(result)) == ["2026-11-20"]
    assert tick(storage_root, result.cursor).run_requests == []
    scan = automation.scan_landing_zone(storage_root, None, ingest_job.partitions_def)
    assert scan.newly_waiting == [bad_day] and "not a partition" in scan.waiting[bad_day]
    # Said once, not on every tick.
    assert automation.scan_landing_zone(storage_root, scan.cursor, ingest_job.partitions_def).newly_waiting == []


def test_a_day_waiting_to_become_a_partition_is_ingested_once_it_is(storage_root):
    drop(storage_root, "2026-11-21", "tomorrow.csv")
    before_midnight = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2026-11-21")
    after_midnight = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2026-11-22")
    scan = automation.scan_landing_zone(storage_root, None, before_midnight)
    assert scan.to_ingest == {} and "2026-11-21" in scan.waiting
    assert list(automation.scan_landing_zone(storage_root, scan.cursor, after_midnight).to_ingest) == ["2026-11-21"]


def test_ten_thousand_ingested_files_and_ten_new_ones_request_only_their_two_days(storage_root):
    for day_number in range(100):
        day = (dt.date(2026, 8, 1) + dt.timedelta(days=day_number)).isoformat()
        folder = Path(ProjectLayout(storage_root).landing_day(day))
        folder.mkdir(parents=True)
        for part in range(100):
            (folder / f"part-{part:04d}.csv").write_text("x")
    cursor = tick(storage_root, None).cursor
    for part in range(5):
        drop(storage_root, "2026-08-05", f"new-{part}.csv")
        drop(storage_root, "2026-11-01", f"new-{part}.csv")
    result = tick(storage_root, cursor)
    assert set(requested(result)) == {"2026-08-05", "2026-11-01"}
    assert all(r.tags["algo-platform/landing-files"] == "105" for r in result.run_requests)


def test_files_that_land_in_the_same_clock_tick_are_not_lost(storage_root):
    first = drop(storage_root, "2026-11-20", "first.csv")
    cursor = tick(storage_root, None).cursor
    second = drop(storage_root, "2026-11-20", "second.csv")
    stamp = os.stat(first).st_mtime_ns
    os.utime(second, ns=(stamp, stamp))  # the same instant as the file already seen
    assert requested(tick(storage_root, cursor)).keys() == {"2026-11-20"}


def test_a_link_for_a_day_folder_is_not_followed(storage_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.csv").write_text("user_id,item_id,ts\n1,2,2026-11-19T00:00:00Z\n")
    events = Path(ProjectLayout(storage_root).landing_day("2026-11-20")).parent
    events.mkdir(parents=True)
    (events / "2026-11-19").symlink_to(outside)
    assert tick(storage_root, None).run_requests == []


def test_schedule_requests_the_latest_complete_day():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC))
    request = nightly_retraining(context)
    assert request.partition_key == "2026-11-20" and request.run_key == "nightly:2026-11-20"
    assert nightly_retraining.cron_schedule == "0 2 * * *"
