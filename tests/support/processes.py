"""The platform as real processes (daemon, webserver, the CLI) on loopback, and waiting for them."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from algo_platform.cli.scaffold import scaffold_project
from tests.support.factories import PROJECT
from tests.support.postgres import REPO

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


def cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def queue_retraining(env: dict, project: str, partition: str) -> str:
    """Queue `<project>_retrain_job` for a partition with Dagster's own CLI (the daemon runs it)."""
    tags = json.dumps({"dagster/partition": partition})
    job = f"{project}_retrain_job"
    return cli(env, "dagster", "job", "launch", "-w", env[WORKSPACE], "-l", project, "-j", job, "--tags", tags)


def wait_for(condition, what: str, logs: Path):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs.glob("*.log"))
    pytest.fail(f"timed out after {DEADLINE_SECONDS}s waiting for {what}\n{tails}")
