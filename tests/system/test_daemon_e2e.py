"""The daemon and webserver as real processes: a file lands, the sensor launches a run, it succeeds.

Loopback only; every process a test starts, it stops.
"""

import signal
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from tests.support.factories import PROJECT
from tests.support.processes import BIN, WORKSPACE, Processes, cli, free_port, temporary_platform, wait_for


@pytest.fixture
def platform(tmp_path):
    env, _ = temporary_platform(tmp_path, ALGO_PLATFORM_SENSOR_INTERVAL_SECONDS="1")
    processes = Processes(env, tmp_path)
    try:
        yield env, processes, tmp_path
    finally:
        processes.stop_all()


def sensor_runs(home: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(home) as instance:
        return [r for r in instance.get_runs() if r.tags.get("algo-platform/trigger") == "landing_zone_sensor"]


def upload(env: dict, source: Path, day: str) -> None:
    source.write_text(f"user_id,item_id,ts\n1,10,{day}T08:00:00Z\n2,11,{day}T09:00:00Z\n3,12,{day}T10:00:00Z\n")
    cli(env, "algo-platform", "upload", "--project", PROJECT, str(source), "--date", day)


def sensor_ticks(home: str) -> int:
    """How many ticks the landing-zone sensor has recorded."""
    with dg.DagsterInstance.from_config(home) as instance:
        states = [s for s in instance.all_instigator_state() if s.name == f"{PROJECT}_landing_zone_sensor"]
        return sum(len(instance.get_ticks(s.instigator_origin_id, s.selector_id, limit=1000)) for s in states)


def test_sensor_launches_a_successful_ingest_and_a_daemon_restart_loses_and_repeats_nothing(platform):
    env, processes, tmp = platform
    home = env["DAGSTER_HOME"]
    port = free_port()
    processes.start(
        "webserver", str(BIN / "dagster-webserver"), "-w", env[WORKSPACE], "-h", "127.0.0.1", "-p", str(port)
    )
    processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
    cli(env, "dagster", "sensor", "start", f"{PROJECT}_landing_zone_sensor", "-w", env[WORKSPACE])

    upload(env, tmp / "first.csv", "2026-11-18")
    runs = wait_for(
        lambda: [r for r in sensor_runs(home) if r.status == dg.DagsterRunStatus.SUCCESS],
        "the sensor's first run to succeed",
        tmp,
    )
    assert [r.tags["dagster/partition"] for r in runs] == ["2026-11-18"]
    info = urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=10).read()
    assert b"dagster_webserver_version" in info

    # Kill the daemon hard while new files arrive, then start it again.
    processes.stop("daemon", signal.SIGKILL)
    upload(env, tmp / "second.csv", "2026-11-19")
    upload(env, tmp / "third.csv", "2026-11-20")
    processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])

    def all_three_done():
        runs = sensor_runs(home)
        done = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
        return runs if len(done) >= 3 and len(done) == len(runs) else None

    runs = wait_for(all_three_done, "runs for the files that landed while the daemon was down", tmp)
    # Two more sensor ticks (waited for, not slept: a busy machine ticks late): nothing asked twice.
    seen = sensor_ticks(home)
    wait_for(lambda: sensor_ticks(home) >= seen + 2, "two more sensor ticks", tmp)
    runs = sensor_runs(home)
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["2026-11-18", "2026-11-19", "2026-11-20"]
    with dg.DagsterInstance.from_config(home) as instance:
        assert {"2026-11-18", "2026-11-19", "2026-11-20"} <= instance.get_materialized_partitions(
            dg.AssetKey([PROJECT, "user_features"])
        )
