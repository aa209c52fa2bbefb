import datetime as dt
import json
import time
from pathlib import Path

import dagster as dg
import pytest

from algo_platform.jobs import automation
from algo_platform.jobs.automation import landing_zone_sensor, latest_complete_day, nightly_retraining
from algo_platform.landing import landing_dir
from algo_platform.resources.storage import PlatformStorage
from algo_platform.upload import upload_event_file


def tick(storage_root: str, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={"storage": PlatformStorage(root=storage_root)})
    return landing_zone_sensor(context)


def drop(
    storage_root: str, day: str, name: str, content: str = "user_id,item_id,ts\n1,2,2026-11-20T00:00:00Z\n"
) -> None:
    folder = Path(landing_dir(storage_root, day))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content)


def requested(result: dg.SensorResult) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result.run_requests}


def test_one_run_per_day_with_new_files_and_nothing_twice(storage_root):
    drop(storage_root, "2026-11-19", "a.csv")
    drop(storage_root, "2026-11-20", "b.csv")
    drop(storage_root, "2026-11-20", "c.csv")
    first = tick(storage_root, None)
    assert set(requested(first)) == {"2026-11-19", "2026-11-20"}
    assert all(r.job_name in (None, "ingest_job") for r in first.run_requests)

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
    assert result.run_requests[0].tags["algo-platform/new-files"] == "1"


def test_reuploading_an_identical_file_requests_nothing(storage_root, tmp_path):
    source = tmp_path / "events.csv"
    source.write_text("user_id,item_id,ts\n1,2,2026-11-20T10:00:00Z\n")
    upload_event_file(source, "2026-11-20", {}, storage_root)
    cursor = tick(storage_root, None).cursor
    assert upload_event_file(source, "2026-11-20", {}, storage_root).already_present
    assert tick(storage_root, cursor).run_requests == []


def test_tick_work_grows_with_new_files_not_with_all_files(storage_root, monkeypatch):
    """10,000 files already processed over 100 days; 10 arrive in 2 days: only 2 folders are listed."""
    # Ticks happen well after the folders last changed, as they would between real ticks.
    monkeypatch.setattr(automation, "_now_ns", lambda: time.time_ns() + 10_000_000_000)
    for day_number in range(100):
        day = (dt.date(2026, 8, 1) + dt.timedelta(days=day_number)).isoformat()
        folder = Path(landing_dir(storage_root, day))
        folder.mkdir(parents=True)
        for part in range(100):
            (folder / f"part-{part:04d}.csv").write_text("x")
    cursor = tick(storage_root, None).cursor
    assert len(json.loads(cursor)) == 100

    for part in range(5):
        drop(storage_root, "2026-08-05", f"new-{part}.csv")
        drop(storage_root, "2026-11-01", f"new-{part}.csv")
    listed = []
    original = automation._folder_state
    monkeypatch.setattr(
        automation, "_folder_state", lambda folder, *a: listed.append(folder.name) or original(folder, *a)
    )
    result = tick(storage_root, cursor)

    assert sorted(listed) == ["2026-08-05", "2026-11-01"]
    assert set(requested(result)) == {"2026-08-05", "2026-11-01"}
    assert all(r.tags["algo-platform/new-files"] == "5" for r in result.run_requests)


def test_files_that_land_in_the_same_clock_tick_are_not_lost(storage_root):
    drop(storage_root, "2026-11-20", "first.csv")
    cursor = tick(storage_root, None).cursor
    # The folder changed less than 2 s before the scan, so its time is not trusted next tick.
    assert json.loads(cursor)["2026-11-20"]["dir_ns"] is None
    drop(storage_root, "2026-11-20", "second.csv")
    assert requested(tick(storage_root, cursor)).keys() == {"2026-11-20"}


def test_schedule_requests_the_latest_complete_day():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC))
    request = nightly_retraining(context)
    assert request.partition_key == "2026-11-20" and request.run_key == "nightly:2026-11-20"
    assert nightly_retraining.cron_schedule == "0 2 * * *"


@pytest.mark.parametrize(
    ("local_time", "zone", "day"),
    [
        ("2026-11-21T02:00", "UTC", "2026-11-20"),
        ("2026-11-21T02:00", "Asia/Shanghai", "2026-11-19"),
        ("2026-11-21T02:00", "America/Los_Angeles", "2026-11-20"),
    ],
)
def test_latest_complete_day_in_any_timezone(local_time, zone, day):
    from zoneinfo import ZoneInfo

    moment = dt.datetime.fromisoformat(local_time).replace(tzinfo=ZoneInfo(zone))
    assert latest_complete_day(moment) == day
