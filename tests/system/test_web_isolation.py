"""Each team's data kept to its team: what a signed-in user reads from a real `algo-platform webserver`
(tests/support/web_platform.py: edna is an editor of team_a and holds no role on team_b) over every read
transport: a JSON POST, a GET, the websocket's subscriptions and the download routes."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from urllib.parse import quote

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
    assert edna.http.get(f"{web.base}/download_debug/{web.runs[PROJECT]}", timeout=30).status_code == 200


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
