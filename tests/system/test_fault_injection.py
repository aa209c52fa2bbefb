"""The daemon driven through a mixed sequence of faults; every good row lands exactly once.

Real processes on a temporary instance: the daemon (sensor, run queue, run retries) ingests what
lands while files are written in place, repeated, colliding and misdated, a run worker is killed
with SIGKILL mid-run, and a day gets a second run requested while its first is still going.
"""

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from algo_platform.core.layout import ProjectLayout
from algo_platform.ingest.upload import upload_event_file
from tests.support.factories import PROJECT
from tests.support.processes import BIN, WORKSPACE, Processes, cli, temporary_platform, wait_for

PLAIN_DAY, IN_PLACE_DAY, KILLED_DAY = "2026-11-16", "2026-11-17", "2026-11-18"


def events(prefix: str, day: str, count: int, user_offset: int = 0) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame(
        {
            "event_id": [f"{prefix}-{n}" for n in range(count)],
            "user_id": user_offset + 1 + pd.RangeIndex(count) % 997,
            "item_id": 1 + pd.RangeIndex(count) % 501,
            "ts": start + pd.to_timedelta(pd.RangeIndex(count) % 86_000, unit="s"),
        }
    )


def cleaned(storage: Path, day: str) -> pd.DataFrame:
    return pq.read_table(storage / "projects" / PROJECT / "cleaned_events" / f"{day}.parquet").to_pandas()


def runs_of(home: str, day: str) -> list[dg.RunRecord]:
    with dg.DagsterInstance.from_config(home) as instance:
        return list(instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": day})))


def worker_pid(home: str, run_id: str) -> int | None:
    with dg.DagsterInstance.from_config(home) as instance:
        for entry in instance.all_logs(run_id):
            if entry.is_dagster_event and entry.dagster_event.event_type_value == "STEP_START":
                return entry.dagster_event.pid
    return None


def running_worker(home: str, day: str, seconds: float = 1.0) -> int | None:
    """The pid of a run worker of `day` that has started a step (polled briskly for `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for record in runs_of(home, day):
            if record.dagster_run.status == dg.DagsterRunStatus.STARTED:
                pid = worker_pid(home, record.dagster_run.run_id)
                if pid:
                    return pid
        time.sleep(0.05)
    return None


def settled_runs(home: str, day: str, at_least: int):
    """The day's runs once at least `at_least` exist, none is queued or running, and one succeeded."""
    records = runs_of(home, day)
    if len(records) < at_least or any(not r.dagster_run.is_finished for r in records):
        return None
    return records if any(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records) else None


def test_every_good_row_lands_exactly_once_through_faults(tmp_path):
    env, home = temporary_platform(
        tmp_path, ALGO_PLATFORM_SENSOR_INTERVAL_SECONDS="1", ALGO_PLATFORM_LANDING_SETTLE_SECONDS="2"
    )
    storage, home = Path(env["ALGO_PLATFORM_STORAGE"]), str(home)
    processes = Processes(env, tmp_path)
    expected: dict[str, set[str]] = {}
    try:
        processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
        cli(env, "dagster", "sensor", "start", f"{PROJECT}_landing_zone_sensor", "-w", env[WORKSPACE])

        # 1. A plain upload, the same bytes again under another name, a file colliding on ids, and
        #    folders that are not partitions (future, before the start): none may stop the rest.
        plain = events("plain", PLAIN_DAY, 500)
        plain.to_csv(tmp_path / "plain.csv", index=False)
        cli(env, "algo-platform", "upload", "--project", PROJECT, str(tmp_path / "plain.csv"), "--date", PLAIN_DAY)
        (tmp_path / "plain-again.csv").write_bytes((tmp_path / "plain.csv").read_bytes())
        cli(
            env, "algo-platform", "upload", "--project", PROJECT, str(tmp_path / "plain-again.csv"), "--date", PLAIN_DAY
        )
        colliding = pd.concat([events("plain", PLAIN_DAY, 50, user_offset=5000), events("extra", PLAIN_DAY, 70)])
        colliding.to_csv(tmp_path / "colliding.csv", index=False)
        cli(env, "algo-platform", "upload", "--project", PROJECT, str(tmp_path / "colliding.csv"), "--date", PLAIN_DAY)
        expected[PLAIN_DAY] = set(plain.event_id) | {f"extra-{n}" for n in range(70)}
        for day in ("2099-01-01", "2023-12-31"):
            folder = Path(ProjectLayout(str(storage / "projects" / PROJECT)).landing_day(day))
            folder.mkdir(parents=True)
            events("misdated", day, 10).to_csv(folder / "early.csv", index=False)

        # 2. A file written in place in two chunks, with a pause long enough to be ingested half-way.
        in_place = events("chunk", IN_PLACE_DAY, 2000)
        target = (
            Path(ProjectLayout(str(storage / "projects" / PROJECT)).landing_day(IN_PLACE_DAY)) / "written-in-place.csv"
        )
        target.parent.mkdir(parents=True)
        in_place.iloc[:700].to_csv(target, index=False)
        wait_for(lambda: settled_runs(home, IN_PLACE_DAY, 1), "the first chunk's ingest", tmp_path)
        with target.open("a") as file:
            in_place.iloc[700:].to_csv(file, index=False, header=False)
        expected[IN_PLACE_DAY] = set(in_place.event_id)

        # 3. A big day whose run worker is killed mid-run, and a second file for that day landing while
        #    its first run is going (a second run requested for the same day).
        big = events("big", KILLED_DAY, 400_000)
        big.to_parquet(tmp_path / "big.parquet")
        cli(env, "algo-platform", "upload", "--project", PROJECT, str(tmp_path / "big.parquet"), "--date", KILLED_DAY)
        os.kill(wait_for(lambda: running_worker(home, KILLED_DAY), "the big day's run", tmp_path), signal.SIGKILL)
        late = events("late", KILLED_DAY, 300)
        late.to_csv(tmp_path / "late.csv", index=False)
        upload_event_file(tmp_path / "late.csv", KILLED_DAY, {}, str(storage / "projects" / PROJECT))
        expected[KILLED_DAY] = set(big.event_id) | set(late.event_id)

        wait_for(lambda: settled_runs(home, PLAIN_DAY, 1), "the plain day", tmp_path)
        in_place_runs = wait_for(
            lambda: settled_runs(home, IN_PLACE_DAY, 2), "the re-ingest of the rewritten file", tmp_path
        )
        killed_runs = wait_for(
            lambda: settled_runs(home, KILLED_DAY, 3), "the killed day's retry and second run", tmp_path
        )
        time.sleep(5)  # a few more ticks: nothing more may be requested
    finally:
        processes.stop_all()

    # Every good row exactly once; the colliding rows lost to the first arrival; nothing else.
    for day, event_ids in expected.items():
        table = cleaned(storage, day)
        assert not table["event_id"].duplicated().any(), day
        assert set(table["event_id"]) == event_ids, day
    plain_table = cleaned(storage, PLAIN_DAY).set_index("event_id")
    assert (plain_table.loc[[f"plain-{n}" for n in range(50)], "user_id"] < 5000).all()

    with dg.DagsterInstance.from_config(home) as instance:
        materialization = instance.get_latest_materialization_event(dg.AssetKey([PROJECT, "raw_events"]))
        partitions = instance.get_materialized_partitions(dg.AssetKey([PROJECT, "cleaned_events"]))
    assert {PLAIN_DAY, IN_PLACE_DAY, KILLED_DAY} <= partitions
    assert not {"2099-01-01", "2023-12-31"} & partitions
    assert materialization is not None

    # The killed run failed, was retried, and no two runs of one day ever overlapped.
    statuses = [r.dagster_run.status for r in killed_runs]
    assert dg.DagsterRunStatus.FAILURE in statuses
    assert any("dagster/parent_run_id" in r.dagster_run.tags for r in killed_runs)
    for records in (in_place_runs, killed_runs):
        spans = sorted((r.start_time, r.end_time) for r in records if r.start_time)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))
