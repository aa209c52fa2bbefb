"""`algo-platform webserver` and `algo-platform dev`: Dagster's web app behind the guard.

`webserver` is `dagster-webserver` itself (every option the same, so the Helm chart's command
line works unchanged) with one seam replaced: the function that builds the ASGI app returns it
wrapped in `guard.guarded`. Hosts beyond loopback and `--host` come from
`ALGO_PLATFORM_ALLOWED_HOSTS`, extra trusted origins from `ALGO_PLATFORM_ALLOWED_ORIGINS`
(comma-separated).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from algo_platform.web.guard import LOCAL_HOSTS, guarded

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _listed(variable: str) -> list[str]:
    return [item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()]


def _bound_host(args: Sequence[str]) -> str:
    for flag in ("-h", "--host"):
        if flag in args[:-1]:
            return args[list(args).index(flag) + 1]
    return "127.0.0.1"


def allowed_hosts(args: Sequence[str]) -> list[str]:
    host = _bound_host(args)
    return [*LOCAL_HOSTS, *([] if host in WILDCARD_HOSTS else [host]), *_listed("ALGO_PLATFORM_ALLOWED_HOSTS")]


def webserver(args: Sequence[str]) -> None:
    """Run `dagster-webserver ARGS` with the app wrapped in the cross-site write guard."""
    import dagster_webserver.cli as webserver_cli

    build = webserver_cli.create_app_from_workspace_process_context
    hosts, origins = allowed_hosts(args), _listed("ALGO_PLATFORM_ALLOWED_ORIGINS")

    def build_guarded(*build_args, **build_kwargs):
        return guarded(build(*build_args, **build_kwargs), hosts, origins)

    webserver_cli.create_app_from_workspace_process_context = build_guarded
    webserver_cli.cli.main(args=list(args), prog_name="algo-platform webserver")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (code servers included), SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def dev(workspace: str, host: str, port: int) -> None:
    """The guarded UI and the daemon (schedules, sensors, run queue), as `dagster dev` runs them.

    Ctrl-C or SIGTERM stops both, and when either exits the other is stopped too."""
    bin_dir = Path(sys.executable).parent
    commands = {
        "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
        "webserver": [str(bin_dir / "algo-platform"), "webserver", "-w", workspace, "-h", host, "-p", str(port)],
    }

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    processes = {name: subprocess.Popen(command, start_new_session=True) for name, command in commands.items()}
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        exited = next(name for name, process in processes.items() if process.poll() is not None)
        print(f"algo-platform dev: the {exited} exited; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            _stop(process)
