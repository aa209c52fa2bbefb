"""The trainer stops when whoever launched it is gone, so a dead run never leaves a GPU busy.

Locally the launcher is the trainer's parent process (`ALGO_PLATFORM_LAUNCHER_PID`): when the run
worker dies, even by `kill -9`, the trainer is re-parented and notices. In a Kubernetes pod the
launcher writes a heartbeat annotation on the pod, which the kubelet mirrors into a downward-API
file (`ALGO_PLATFORM_LAUNCHER_HEARTBEAT_FILE`); a heartbeat older than
`ALGO_PLATFORM_LAUNCHER_TIMEOUT_SECONDS` means the run worker is gone.

The trainer's checkpoints stay behind, so the run's retry resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time

from algo_platform.core import environment

LAUNCHER_PID_ENV = "ALGO_PLATFORM_LAUNCHER_PID"
HEARTBEAT_FILE_ENV = "ALGO_PLATFORM_LAUNCHER_HEARTBEAT_FILE"
HEARTBEAT_TIMEOUT_ENV = "ALGO_PLATFORM_LAUNCHER_TIMEOUT_SECONDS"
HEARTBEAT_ANNOTATION = "algo-platform/launcher-heartbeat"
# EX_TEMPFAIL: the work is not done and may be resumed.
ORPHANED_EXIT_CODE = 75

log = logging.getLogger(__name__)


def read_heartbeat(annotations_file: str) -> float | None:
    """The heartbeat (epoch seconds) in a downward-API annotations file (`key="value"` lines)."""
    try:
        with open(annotations_file) as file:
            text = file.read()
    except OSError:
        return None
    match = re.search(rf'^{re.escape(HEARTBEAT_ANNOTATION)}="([0-9.]+)"$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def launcher_gone(environ: dict[str, str], parent_pid: int, now: float) -> str | None:
    """Why the launcher counts as gone, or None while it is alive."""
    expected_parent = environ.get(LAUNCHER_PID_ENV)
    if expected_parent and parent_pid != int(expected_parent):
        return f"launcher process {expected_parent} is gone"
    heartbeat_file = environ.get(HEARTBEAT_FILE_ENV)
    if heartbeat_file:
        timeout = float(environ.get(HEARTBEAT_TIMEOUT_ENV, "300"))
        beat = read_heartbeat(heartbeat_file)
        if beat is not None and now - beat > timeout:
            return f"no heartbeat from the launcher for {now - beat:.0f}s (limit {timeout:.0f}s)"
    return None


def exit_with_launcher(interval_seconds: float = 1.0) -> threading.Thread | None:
    """Watch the launcher in a daemon thread and end this process once it is gone."""
    names = (LAUNCHER_PID_ENV, HEARTBEAT_FILE_ENV, HEARTBEAT_TIMEOUT_ENV)
    watched = {name: value for name in names if (value := environment.read(name))}
    if not (watched.get(LAUNCHER_PID_ENV) or watched.get(HEARTBEAT_FILE_ENV)):
        return None

    def watch() -> None:
        while True:
            reason = launcher_gone(watched, os.getppid(), time.time())
            if reason:
                log.error(f"{reason}: stopping the trainer (its last checkpoint is kept for the retry)")
                os._exit(ORPHANED_EXIT_CODE)
            time.sleep(interval_seconds)

    thread = threading.Thread(target=watch, name="launcher-watchdog", daemon=True)
    thread.start()
    return thread
