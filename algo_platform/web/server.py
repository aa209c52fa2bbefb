"""`algo-platform webserver` and `algo-platform dev`: Dagster's web app behind sign-in and the guard.

`webserver` is `dagster-webserver` itself (every option the same, so the Helm chart's command
line works unchanged) with one seam replaced: the function that builds the ASGI app returns it
wrapped in `signin.signed_in` (users, roles, audit) inside `guard.guarded` (cross-site writes).
It also gives Dagster's own permission checks the user's roles, so the UI greys out what a viewer
may not do. Hosts beyond loopback and `--host` come from `ALGO_PLATFORM_ALLOWED_HOSTS`, extra
trusted origins from `ALGO_PLATFORM_ALLOWED_ORIGINS` (comma-separated).
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

from algo_platform.core import environment
from algo_platform.web.guard import LOCAL_HOSTS, guarded
from algo_platform.web.identity import AuthConfigError, AuthSettings
from algo_platform.web.signin import PRINCIPAL, signed_in

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _bound_host(args: Sequence[str]) -> str:
    for flag in ("-h", "--host"):
        if flag in args[:-1]:
            return args[list(args).index(flag) + 1]
    return "127.0.0.1"


def allowed_hosts(args: Sequence[str]) -> list[str]:
    host = _bound_host(args)
    extra = environment.read_list("ALGO_PLATFORM_ALLOWED_HOSTS")
    return [*LOCAL_HOSTS, *([] if host in WILDCARD_HOSTS else [host]), *extra]


def scope_permissions_to_users(process_context) -> None:
    """Each request's Dagster context is the signed-in user's: what they may read and do.

    Reads: a user who is not a platform admin sees the workspace and the runs, logs and asset
    events of the projects they hold a role on, and nothing else (web/visibility.py). Actions:
    Dagster knows two levels per code location, read-only or not: a launcher or better may act on
    a project, a viewer may not; only platform admins hold the workspace-wide permissions, so the
    UI greys out what a user may not do. The middleware's finer checks (launcher vs editor vs
    admin) still run first."""
    from dagster._core.workspace.context import WorkspaceRequestContext

    from algo_platform.accounts.principal import Role
    from algo_platform.web.visibility import WorkspaceScoper, scoped_instance

    class MemberRequestContext(WorkspaceRequestContext):
        @property
        def show_instance_config(self) -> bool:
            return False  # `instance { info }`: the server's paths and settings, for platform admins only

    create = process_context.create_request_context
    workspaces = WorkspaceScoper()

    def create_for_user(source=None):
        context = create(source)
        principal = getattr(source, "scope", {}).get(PRINCIPAL) if source is not None else None
        if principal is None or principal.platform_admin:
            return context
        projects = frozenset(principal.roles)
        workspace = workspaces.scoped(context.get_current_workspace(), projects)
        return MemberRequestContext(
            instance=scoped_instance(context.instance, projects),
            current_workspace=workspace,
            process_context=process_context,
            version=context.version,
            source=source,
            read_only=True,
            read_only_locations={
                location: (principal.role_on(location) or 0) < Role.launcher
                for location in workspace.code_location_entries
            },
        )

    process_context.create_request_context = create_for_user


def webserver(args: Sequence[str]) -> None:
    """Run `dagster-webserver ARGS` with the app behind sign-in and the cross-site write guard."""
    import dagster_webserver.cli as webserver_cli

    from algo_platform.accounts.store import Accounts
    from algo_platform.web.targets import WorkspaceTargets

    try:
        settings = AuthSettings.from_environment()
    except AuthConfigError as error:
        if "--help" not in args:  # the options print without a secret; serving needs one
            print(f"algo-platform webserver: {error}", file=sys.stderr)
            sys.exit(2)
        settings = None
    build = webserver_cli.create_app_from_workspace_process_context
    hosts, origins = allowed_hosts(args), environment.read_list("ALGO_PLATFORM_ALLOWED_ORIGINS")

    def build_guarded(process_context, path_prefix: str = "", *build_args, **build_kwargs):
        app = build(process_context, path_prefix, *build_args, **build_kwargs)
        scope_permissions_to_users(process_context)
        accounts = Accounts.for_instance(process_context.instance)
        if settings.mode == "local" and not accounts.list_users():
            print(
                "algo-platform webserver: no users yet; add one with `algo-platform users add NAME --platform-admin`",
                file=sys.stderr,
            )
        protected = signed_in(app, accounts, WorkspaceTargets(process_context), settings, path_prefix)
        return guarded(protected, hosts, origins)

    webserver_cli.create_app_from_workspace_process_context = build_guarded
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any process on the host could
    # then claim a trusted proxy's address, or any address at all for the audit log. No address is
    # trusted here; the middleware reads the header itself, from ALGO_PLATFORM_TRUSTED_PROXIES only.
    os.environ["FORWARDED_ALLOW_IPS"] = ""
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

    Ctrl-C or SIGTERM stops both, and when either exits the other is stopped too. Without
    ALGO_PLATFORM_SESSION_SECRET it signs sessions with a secret made for this run only (everyone
    signs in again after a restart); `algo-platform webserver` refuses to start without one."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    if not env.get("ALGO_PLATFORM_SESSION_SECRET"):
        import secrets

        env["ALGO_PLATFORM_SESSION_SECRET"] = secrets.token_urlsafe(32)
        print("algo-platform dev: sessions are signed with a secret made for this run", file=sys.stderr)
    commands = {
        "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
        "webserver": [str(bin_dir / "algo-platform"), "webserver", "-w", workspace, "-h", host, "-p", str(port)],
    }

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    processes = {name: subprocess.Popen(command, start_new_session=True, env=env) for name, command in commands.items()}
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
