"""The daemon and webserver as real processes: a file lands, the sensor launches a run, it succeeds.

Loopback only; every process a test starts, it stops.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from algo_platform.cli.scaffold import scaffold_project
from tests.conftest import PROJECT
from tests.postgres import REPO

WORKSPACE = "ALGO_PLATFORM_TEST_WORKSPACE"  # env key: the test's own workspace.yaml, with its project

BIN = Path(sys.executable).parent
DEADLINE_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Starts long-running processes in their own process groups and always stops them."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.running = env, logs, {}

    def start(self, name: str, *command: str) -> None:
        log = open(self.logs / f"{name}.log", "a")  # noqa: SIM115 (closed in stop)
        process = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running[name] = (process, log)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process, log = self.running.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def temporary_platform(tmp_path: Path, window_days: int = 7, **extra_env: str) -> tuple[dict, Path]:
    """A DAGSTER_HOME with the default dagster.yaml, a storage root, a workspace with one project
    scaffolded as `algo-platform project new` does (no Python edited), and the env for processes."""
    home, storage = tmp_path / "home", tmp_path / "storage"
    home.mkdir()
    workspace = tmp_path / "workspace.yaml"
    created = scaffold_project(tmp_path / "projects", PROJECT, [], "2024-01-01", workspace)
    text = created.project_file.read_text().replace("window_days: 7", f"window_days: {window_days}")
    created.project_file.write_text(text)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    # Create the instance's SQLite tables once, before any process starts: a daemon and a CLI
    # starting together on an empty DAGSTER_HOME race to create them and one of them dies.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ALGO_PLATFORM_STORAGE": str(storage),
        "ALGO_PLATFORM_PROJECTS": str(tmp_path / "projects"),
        WORKSPACE: str(workspace),
        **extra_env,
    }
    return env, home


@pytest.fixture
def platform(tmp_path):
    env, _ = temporary_platform(tmp_path, ALGO_PLATFORM_SENSOR_INTERVAL_SECONDS="1")
    processes = Processes(env, tmp_path)
    try:
        yield env, processes, tmp_path
    finally:
        processes.stop_all()


def cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def sensor_runs(home: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(home) as instance:
        return [r for r in instance.get_runs() if r.tags.get("algo-platform/trigger") == "landing_zone_sensor"]


def wait_for(condition, what: str, logs: Path):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs.glob("*.log"))
    pytest.fail(f"timed out after {DEADLINE_SECONDS}s waiting for {what}\n{tails}")


def upload(env: dict, source: Path, day: str) -> None:
    source.write_text(f"user_id,item_id,ts\n1,10,{day}T08:00:00Z\n2,11,{day}T09:00:00Z\n3,12,{day}T10:00:00Z\n")
    cli(env, "algo-platform", "upload", "--project", PROJECT, str(source), "--date", day)


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
    time.sleep(5)  # a few more sensor ticks: nothing may be requested twice
    runs = sensor_runs(home)
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["2026-11-18", "2026-11-19", "2026-11-20"]
    with dg.DagsterInstance.from_config(home) as instance:
        assert {"2026-11-18", "2026-11-19", "2026-11-20"} <= instance.get_materialized_partitions(
            dg.AssetKey([PROJECT, "user_features"])
        )


def test_backfill_of_three_days_from_the_cli(platform):
    env, processes, tmp = platform
    home = env["DAGSTER_HOME"]
    cli(
        env,
        "algo-platform",
        "generate",
        "--project",
        PROJECT,
        "--days",
        "3",
        "--events-per-day",
        "500",
        "--end-date",
        "2026-11-20",
    )
    processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
    cli(
        env,
        "dagster",
        "job",
        "backfill",
        "-w",
        env[WORKSPACE],
        "-j",
        f"{PROJECT}_ingest_job",
        "--from",
        "2026-11-18",
        "--to",
        "2026-11-20",
        "--noprompt",
    )

    def backfill_runs_done():
        with dg.DagsterInstance.from_config(home) as instance:
            runs = [r for r in instance.get_runs() if "dagster/backfill" in r.tags]
        return runs if len(runs) == 3 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs) else None

    runs = wait_for(backfill_runs_done, "three successful backfill runs", tmp)
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["2026-11-18", "2026-11-19", "2026-11-20"]
