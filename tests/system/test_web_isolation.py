"""Each team's data kept to its team: what a signed-in user reads from a real `algo-platform webserver`
(tests/support/web_platform.py: edna is an editor of team_a and holds no role on team_b) over every read
transport: a JSON POST, a GET, the websocket's subscriptions and the download routes."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import secrets
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

import dagster as dg
import pytest
import websockets

from tests.support.factories import PROJECT
from tests.support.processes import BIN
from tests.support.web_platform import OTHER_PROJECT, PlatformSession, launched_run

SECRET_ROWS = "user 4711 watched item 99 at 03:12"  # what a day's preview metadata would show
RUNS = "{ runsOrError { ... on Runs { results { runId tags { key value } } } } }"
ASSET_EVENTS = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 5) {
    metadataEntries { label ... on TextMetadataEntry { text } } } } } }"""


@pytest.fixture(scope="module")
def web(web_platform):
    """Runs in both projects, one without a project tag, and a materialization with a preview in each."""
    web = web_platform
    runs = {}
    for user, project in (("edna", PROJECT), ("lars", OTHER_PROJECT)):
        launched = launched_run(web.client(user), project)
        runs[project] = launched.json()["data"]["launchRun"]["run"]["runId"]
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        for project in (PROJECT, OTHER_PROJECT):
            instance.report_runless_asset_event(
                dg.AssetMaterialization([project, "raw_events"], metadata={"preview": f"{project}: {SECRET_ROWS}"})
            )
        untagged = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), run_id=None)
        runs[None] = untagged.run_id
    web.runs = runs
    return web


def run_ids(answer) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {run["runId"] for run in answer.json()["data"]["runsOrError"]["results"]}


def previews(session, project: str) -> str:
    answer = session.graphql(ASSET_EVENTS, {"key": {"path": [project, "raw_events"]}})
    assert answer.status_code == 200, answer.text
    return json.dumps(answer.json()["data"])


def test_a_member_reads_their_project_and_nothing_of_another(web):
    edna = web.client("edna")
    assert run_ids(edna.graphql(RUNS)) == {web.runs[PROJECT]}  # not team_b's, not the untagged one
    over_get = edna.http.get(f"{web.base}/graphql?query={quote(RUNS)}", timeout=30)
    assert run_ids(over_get) == {web.runs[PROJECT]}
    theirs = web.runs[OTHER_PROJECT]
    other = edna.graphql(f'{{ runOrError(runId: "{theirs}") {{ __typename }} }}')
    assert other.json()["data"]["runOrError"]["__typename"] == "RunNotFoundError"
    logs = edna.graphql(
        f'{{ logsForRun(runId: "{theirs}") {{ __typename ... on EventConnection {{ events {{ __typename }} }} }} }}'
    )
    assert '"events": [{' not in json.dumps(logs.json())
    assert SECRET_ROWS in previews(edna, PROJECT)
    assert SECRET_ROWS not in previews(edna, OTHER_PROJECT)
    nodes = edna.graphql("{ assetNodes { assetKey { path } } }").json()["data"]["assetNodes"]
    assert nodes and {node["assetKey"]["path"][0] for node in nodes} == {PROJECT}
    keys = edna.graphql("{ assetsOrError { ... on AssetConnection { nodes { key { path } } } } }").json()
    assert OTHER_PROJECT not in json.dumps(keys)
    locations = edna.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }").json()["data"][
        "workspaceOrError"
    ]["locationEntries"]
    assert [entry["name"] for entry in locations] == [PROJECT]
    debug = edna.http.get(f"{web.base}/download_debug/{web.runs[OTHER_PROJECT]}", timeout=30)
    assert debug.status_code == 404
    # A debug export carries stack traces and server paths: platform admins only, even for one's own runs.
    own = edna.http.get(f"{web.base}/download_debug/{web.runs[PROJECT]}", timeout=30)
    assert own.status_code == 404 and "for platform admins" in own.text
    assert web.client("root").http.get(f"{web.base}/download_debug/{web.runs[PROJECT]}", timeout=30).status_code == 200


def test_the_websocket_streams_no_other_projects_run_logs(web):
    edna = web.client("edna")
    cookie = "; ".join(f"{c.name}={c.value}" for c in edna.http.cookies)

    async def subscribe(run_id: str) -> list[dict]:
        url = web.base.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-ws"], additional_headers={"Cookie": cookie},
                                      open_timeout=10) as socket:  # fmt: skip
            await socket.send(json.dumps({"type": "connection_init"}))
            query = (
                "subscription($runId: ID!) { pipelineRunLogs(runId: $runId) { __typename "
                "... on PipelineRunLogsSubscriptionSuccess { messages { __typename } } } }"
            )
            payload = {"query": query, "variables": {"runId": run_id}}
            await socket.send(json.dumps({"type": "start", "id": "1", "payload": payload}))
            while True:  # the subscription's first answer
                frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if frame.get("type") in ("data", "error", "complete"):
                    return frame

    theirs = asyncio.run(subscribe(web.runs[OTHER_PROJECT]))["payload"]["data"]["pipelineRunLogs"]
    mine = asyncio.run(subscribe(web.runs[PROJECT]))["payload"]["data"]["pipelineRunLogs"]
    assert theirs["__typename"] == "PipelineRunLogsSubscriptionFailure"  # as if there were no such run
    assert mine["__typename"] == "PipelineRunLogsSubscriptionSuccess" and mine["messages"]


def test_a_user_with_no_role_sees_no_project_and_admins_see_all(web):
    password = secrets.token_urlsafe(18)
    add = [str(BIN / "algo-platform"), "users", "add", "nora", "--password-stdin"]
    subprocess.run(add, input=password, env=web.env, check=True, capture_output=True, text=True)
    nora = PlatformSession(web.base)
    assert nora.sign_in("nora", password).status_code == 200
    assert run_ids(nora.graphql(RUNS)) == set()
    assert nora.graphql("{ assetNodes { id } }").json()["data"]["assetNodes"] == []
    assert SECRET_ROWS not in previews(nora, PROJECT)
    root = web.client("root")
    assert run_ids(root.graphql(RUNS)) >= {web.runs[PROJECT], web.runs[OTHER_PROJECT], web.runs[None]}
    assert SECRET_ROWS in previews(root, OTHER_PROJECT)


# Step logs, shared pools, snapshots and the instance's settings: what the second attack reached ---------

STEP = "team_step"


def raw_get(web, session: PlatformSession, path: str) -> tuple[int, str]:
    """A GET of exactly this path (`..` and `%2e%2e` as sent: no client normalises them)."""
    address = urlsplit(web.base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.putheader("Cookie", "; ".join(f"{c.name}={c.value}" for c in session.http.cookies))
    connection.endheaders()
    response = connection.getresponse()
    text = response.read().decode(errors="replace")
    connection.close()
    return response.status, text


def audit_count(web) -> int:
    with sqlite3.connect(web.home / "algo_platform_accounts.db") as connection:
        return connection.execute("SELECT count(*) FROM algo_platform_audit").fetchone()[0]


def leaks(web, text: str) -> list[str]:
    """What of the server's insides an answer shows: a stack trace, a server path, another team's log."""
    found = []
    if "Traceback" in text or re.search(r'"stack": \["', text) or '"errorInfo"' in text:
        found.append("a stack trace")
    if str(web.tmp) in text or str(web.home) in text or "site-packages" in text:
        found.append("a server path")
    if f"{OTHER_PROJECT} stderr" in text:
        found.append("another team's step log")
    return found


@pytest.fixture(scope="module")
def logs(web):
    """A step's stderr for each project's run, where Dagster's local compute log manager keeps it."""
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        for project in (PROJECT, OTHER_PROJECT):
            path = Path(instance.compute_log_manager.get_captured_local_path(
                [web.runs[project], "compute_logs", STEP], "err"))  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{project} stderr: secret of {project}\n")
    return web


def test_another_projects_step_log_cannot_be_reached_through_dot_dot(logs):
    web, edna = logs, logs.client("edna")
    mine, theirs = web.runs[PROJECT], web.runs[OTHER_PROJECT]
    assert raw_get(web, edna, f"/logs/{mine}/compute_logs/{STEP}/err") == (
        200,
        f"{PROJECT} stderr: secret of {PROJECT}\n",
    )
    before = audit_count(web)
    attempts = [
        f"/logs/{mine}/../{theirs}/compute_logs/{STEP}/err",
        f"/logs/{mine}/%2e%2e/{theirs}/compute_logs/{STEP}/err",
        f"/logs/{mine}/%2E%2E/{theirs}/compute_logs/{STEP}/err",
        f"/logs/{theirs}/compute_logs/{STEP}/err",
        f"/logs/{theirs}/compute_logs/{STEP}%00/err",
        f"/logs/{mine}/compute_logs/{STEP}%00/err",
        f"/logs/{mine}/compute_logs/{STEP}/..%2f..%2f{theirs}%2fcompute_logs%2f{STEP}.err",
        f"/logs/{mine}//{theirs}/compute_logs/{STEP}/err",
        f"/download_debug/{mine}/../{theirs}",
    ]
    for path in attempts:
        status, text = raw_get(web, edna, path)
        assert status == 404 and not leaks(web, text), (path, status, text[:300])
    assert audit_count(web) - before == len(attempts)  # each refusal has its row

    key = [mine, "..", theirs, "compute_logs", STEP]
    for query in (
        "query($key: [String!]!) { capturedLogs(logKey: $key) { stdout stderr } }",
        "query($key: [String!]!) { capturedLogsMetadata(logKey: $key) { stdoutLocation stderrLocation } }",
    ):
        answer = edna.graphql(query, {"key": key})
        assert answer.status_code == 200 and not leaks(web, answer.text), answer.text
    own = edna.graphql(
        "query($key: [String!]!) { capturedLogsMetadata(logKey: $key) { stderrLocation stderrDownloadUrl } }",
        {"key": [mine, "compute_logs", STEP]},
    )
    assert own.json()["data"]["capturedLogsMetadata"]["stderrDownloadUrl"] and not leaks(web, own.text), own.text

    cookie = "; ".join(f"{c.name}={c.value}" for c in edna.http.cookies)

    async def subscribe(log_key: list[str]) -> str:
        url = web.base.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-ws"], additional_headers={"Cookie": cookie},
                                      open_timeout=10) as socket:  # fmt: skip
            await socket.send(json.dumps({"type": "connection_init"}))
            query = "subscription($key: [String!]!) { capturedLogs(logKey: $key) { stdout stderr cursor } }"
            payload = {"query": query, "variables": {"key": log_key}}
            await socket.send(json.dumps({"type": "start", "id": "1", "payload": payload}))
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if frame.get("type") in ("data", "error", "complete"):
                    return json.dumps(frame)

    assert f"secret of {PROJECT}" in asyncio.run(subscribe([mine, "compute_logs", STEP]))
    assert not leaks(web, asyncio.run(subscribe(key)))


def test_a_shared_pool_counts_everyones_steps_and_names_only_the_viewers_runs(web):
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        instance.event_log_storage.set_concurrency_slots("shared_pool", 3)
        for project in (PROJECT, OTHER_PROJECT):
            instance.event_log_storage.claim_concurrency_slot("shared_pool", web.runs[project], f"{project}_step")
    query = """{ instance { concurrencyLimits { concurrencyKey activeSlotCount activeRunIds
                 claimedSlots { runId stepKey } pendingSteps { runId stepKey } } } }"""

    def pool(user: str) -> dict:
        answer = web.client(user).graphql(query)
        assert answer.status_code == 200, answer.text
        limits = answer.json()["data"]["instance"]["concurrencyLimits"]
        return next(limit for limit in limits if limit["concurrencyKey"] == "shared_pool")

    seen = pool("edna")
    assert seen["activeSlotCount"] == 2  # the pool's use, as it is
    assert web.runs[OTHER_PROJECT] not in json.dumps(seen) and f"{OTHER_PROJECT}_step" not in json.dumps(seen)
    assert web.runs[PROJECT] in seen["activeRunIds"]
    assert {web.runs[PROJECT], web.runs[OTHER_PROJECT]} <= set(pool("root")["activeRunIds"])


def test_job_snapshots_and_the_instances_settings_are_not_read_across_projects(web):
    edna = web.client("edna")
    query = "query($id: String!) { pipelineSnapshotOrError(snapshotId: $id) { __typename } }"
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        snapshots = {p: instance.get_run_by_id(web.runs[p]).job_snapshot_id for p in (PROJECT, OTHER_PROJECT)}
    typename = lambda answer: answer.json()["data"]["pipelineSnapshotOrError"]["__typename"]  # noqa: E731
    assert typename(edna.graphql(query, {"id": snapshots[PROJECT]})) == "PipelineSnapshot"
    assert typename(edna.graphql(query, {"id": snapshots[OTHER_PROJECT]})) == "PipelineSnapshotNotFoundError"
    assert typename(web.client("root").graphql(query, {"id": snapshots[OTHER_PROJECT]})) == "PipelineSnapshot"
    info = "{ instance { info } }"
    assert edna.graphql(info).json()["data"]["instance"]["info"] is None
    assert str(web.home) in web.client("root").graphql(info).json()["data"]["instance"]["info"]


# Every parameter that names a run, a log, a snapshot, a staged file or a day, sent with another
# project's value or a path trick, as each role: a 4xx with its audit row, or an empty answer; never
# a stack trace, a server path or another team's data.

ROLES = {
    "edna": (PROJECT, OTHER_PROJECT),
    "lars": (OTHER_PROJECT, PROJECT),
    "vic": (PROJECT, None),
    "ada": (PROJECT, OTHER_PROJECT),
}


def hostile_values(other_run: str) -> list[str]:
    """As sent in a URL (percent-encoding left to the server)."""
    return [other_run, "..", "%2e%2e", f"..%2f{other_run}", "%2fetc%2fpasswd", "%00", "", "x" * 300]


def decoded(value: str) -> str:
    return value.replace("%2e", ".").replace("%2f", "/").replace("%00", "\x00")


def http_attempts(own_run: str, own_project: str, csrf: str, value: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("GET", f"/logs/{value}/compute_logs/{STEP}/err", None),
        ("GET", f"/logs/{own_run}/{value}/{STEP}/err", None),
        ("GET", f"/download_debug/{value}", None),
        ("GET", f"/platform/data/{own_project}?day={value}", None),
        ("GET", f"/platform/data/{value}", None),
        ("POST", "/platform/upload/cancel", {"csrf": csrf, "token": decoded(value)}),
        ("POST", "/platform/upload/confirm", {"csrf": csrf, "token": decoded(value)}),
    ]


GRAPHQL_READS = [
    ('query($v: ID!) { runOrError(runId: $v) { __typename ... on Run { runId } } }', lambda v, own: {"v": v}),
    ('query($v: ID!) { logsForRun(runId: $v) { __typename ... on EventConnection { events { __typename } } } }',
     lambda v, own: {"v": v}),
    ("query($k: [String!]!) { capturedLogs(logKey: $k) { stdout stderr } }",
     lambda v, own: {"k": [v, "compute_logs", STEP]}),
    ("query($k: [String!]!) { capturedLogs(logKey: $k) { stdout stderr } }", lambda v, own: {"k": [own, v, STEP]}),
    ("query($k: [String!]!) { capturedLogsMetadata(logKey: $k) { stdoutLocation stderrLocation } }",
     lambda v, own: {"k": [own, v, "compute_logs", STEP]}),
    ("query($v: String!) { pipelineSnapshotOrError(snapshotId: $v) { __typename ... on PipelineSnapshot { name }"
     " ... on PythonError { message stack } } }", lambda v, own: {"v": v}),
]  # fmt: skip


def request(web, session: PlatformSession, method: str, path: str, form: dict | None) -> tuple[int, str]:
    if method == "GET":
        return raw_get(web, session, path)
    answer = session.http.post(f"{web.base}{path}", data=form, headers={"Accept": "application/json"}, timeout=30)
    return answer.status_code, answer.text


@pytest.mark.parametrize("user", sorted(ROLES))
def test_every_parameter_naming_a_run_log_snapshot_token_or_day_holds_against_each_role(logs, user):
    web, session = logs, logs.client(user)
    own_project, other_project = ROLES[user]
    own_run, other_run = web.runs[own_project], web.runs[other_project]
    for value in hostile_values(other_run):
        for method, path, form in http_attempts(own_run, own_project, session.csrf, value):
            before = audit_count(web)
            status, text = request(web, session, method, path, form)
            what = f"{user} {method} {path[:120]}: {status} {text[:200]}"
            assert 400 <= status < 500 and not leaks(web, text), what
            own_missing_log = "No log files available" in text  # Dagster's own 404 for a key of one's own run
            assert audit_count(web) > before or own_missing_log, f"no audit row: {what}"
        for query, variables in GRAPHQL_READS:
            answer = session.graphql(query, variables(decoded(value), own_run))
            what = f"{user} {query[:60]} {value[:20]}: {answer.status_code} {answer.text[:300]}"
            assert answer.status_code in (200, 400, 500) and not leaks(web, answer.text), what
            if answer.status_code == 500:  # Dagster's own answer to a bad argument (an empty id): no stack
                error = next(iter(answer.json()["data"].values()))
                assert error["__typename"] == "PythonError" and error.get("stack", []) == [], what
            data = json.dumps((answer.json() if answer.status_code == 200 else {}).get("data"))
            assert '"runId"' not in data and '"events": [{' not in data and '"name"' not in data, what
            assert f"secret of {other_project}" not in data and f"secret of {own_project}" not in data, what


def test_the_home_page_shows_where_each_of_the_users_projects_stands(web):
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                [PROJECT, "champion_model"], partition="2026-11-20",
                metadata={"champion_version": f"{PROJECT}-next_item v3", "champion_family": "ease", "outcome": "kept"},
            )
        )  # fmt: skip
    page = web.client("edna").http.get(f"{web.base}/platform", timeout=30).text
    table = page.split("<table id='projects'>", 1)[1].split("</table>", 1)[0]
    assert f">{PROJECT}<" in table and f">{OTHER_PROJECT}<" not in table  # only the projects they hold a role on
    assert f"{PROJECT}-next_item v3 (ease); last candidate kept" in table and "2026-11-20, at " in table
    assert "never" in table  # no ingest yet
    both = web.client("vic").http.get(f"{web.base}/platform", timeout=30).text
    assert f">{OTHER_PROJECT}<" in both and "none yet" in both
