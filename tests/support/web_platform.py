"""A platform with two projects and users of each role, served by `algo-platform webserver`.

Users and the session secret are generated for each test run; nothing here is a secret.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import requests

from algo_platform.accounts.principal import Role
from algo_platform.accounts.store import Accounts
from tests.support.factories import PROJECT
from tests.support.processes import BIN, WORKSPACE, Processes, cli, free_port, temporary_platform, wait_for

OTHER_PROJECT = "team_b"
# name -> (flags for `users add`, grants)
USERS = {
    "root": (["--platform-admin"], {}),
    "edna": ([], {PROJECT: "editor"}),
    "vic": ([], {PROJECT: "viewer", OTHER_PROJECT: "viewer"}),
    "lars": ([], {OTHER_PROJECT: "launcher"}),
    "ada": ([], {PROJECT: "admin"}),
}


@dataclass
class WebPlatform:
    base: str
    env: dict
    home: Path
    tmp: Path
    processes: Processes
    passwords: dict[str, str] = field(default_factory=dict)

    def client(self, user: str | None = None) -> PlatformSession:
        session = PlatformSession(self.base)
        if user:
            session.sign_in(user, self.passwords[user])
        return session

    def users(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "algo-platform"), "users", *args], env=self.env, capture_output=True, text=True, check=True
        )


class PlatformSession:
    """A browser-like client: the session cookie and the CSRF token it was given at sign-in."""

    def __init__(self, base: str):
        self.base, self.http, self.csrf = base, requests.Session(), ""

    def sign_in(self, user: str, password: str) -> requests.Response:
        page = self.http.get(f"{self.base}/auth/sign-in", timeout=30)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = self.http.post(
            f"{self.base}/auth/sign-in",
            data={"username": user, "password": password, "csrf": token},
            headers={"Accept": "application/json"},
            timeout=60,
        )
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf"]
        return answer

    def graphql(self, query: str, variables: dict | None = None, **extra) -> requests.Response:
        body = {"query": query, "variables": variables or {}, **extra}
        return self.http.post(f"{self.base}/graphql", json=body, timeout=60)


def start_web_platform(
    tmp: Path, with_daemon: bool = False, prepare: Callable[[dict], None] | None = None, **extra_env: str
) -> WebPlatform:
    """The platform served on a free port; `prepare(env)` runs first (data, demo runs)."""
    secret = secrets.token_urlsafe(32)
    env, home = temporary_platform(tmp, window_days=2, ALGO_PLATFORM_SESSION_SECRET=secret, **extra_env)
    cli(env, "algo-platform", "project", "new", OTHER_PROJECT, "--workspace", env[WORKSPACE])
    if prepare is not None:
        prepare(env)
    platform = WebPlatform("", env, home, tmp, Processes(env, tmp))
    # Through the accounts store, in this process: what `algo-platform users add` and `grant` do
    # (tests/system/test_web_auth.py runs those commands), without a process per user.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        accounts = Accounts.for_instance(instance)
        try:
            for name, (flags, grants) in USERS.items():
                platform.passwords[name] = secrets.token_urlsafe(18)
                accounts.add_user(name, platform.passwords[name], platform_admin="--platform-admin" in flags)
                for project, role in grants.items():
                    accounts.grant(name, project, Role[role])
        finally:
            accounts.close()
    port = free_port()
    platform.processes.start(
        "webserver", str(BIN / "algo-platform"), "webserver", "-w", env[WORKSPACE], "-h", "127.0.0.1", "-p", str(port)
    )
    if with_daemon:
        platform.processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
    platform.base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{platform.base}/server_info", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(answers, "the webserver", tmp)
    except BaseException:
        platform.processes.stop_all()
        raise
    return platform


LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId tags { key value } } }
    ... on PythonError { message }
  }
}"""


DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()


def launch_params(project: str, user_tag: str | None = None) -> dict:
    tags = [{"key": "dagster/partition", "value": DAY}]
    if user_tag:
        tags.append({"key": "user", "value": user_tag})
    return {
        "executionParams": {
            "selector": {
                "repositoryLocationName": project,
                "repositoryName": "__repository__",
                "jobName": f"{project}_ingest_job",
            },
            "executionMetadata": {"tags": tags},
        }
    }


def audit(web, *args: str) -> list[dict]:
    done = subprocess.run(
        [str(BIN / "algo-platform"), "audit", "--json", *args], env=web.env, capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def audit_rows(web, after: int = 0, user: str | None = None) -> list[dict]:
    """The audit log's rows after row `after` (the database read directly: no process per look)."""
    with sqlite3.connect(web.home / "algo_platform_accounts.db") as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM algo_platform_audit WHERE id > ? ORDER BY id", (after,))
        return [dict(row) for row in rows if user is None or row["user_name"] == user]


def last_audit_id(web) -> int:
    with sqlite3.connect(web.home / "algo_platform_accounts.db") as connection:
        return connection.execute("SELECT coalesce(max(id), 0) FROM algo_platform_audit").fetchone()[0]


def launched_run(session: PlatformSession, project: str, tags: list[tuple[str, str]] = (), run_config=None):
    params = launch_params(project)
    metadata = params["executionParams"]["executionMetadata"]
    metadata["tags"] += [{"key": k, "value": v} for k, v in tags]
    if run_config is not None:
        params["executionParams"]["runConfigData"] = run_config
    return session.graphql(LAUNCH, params)
