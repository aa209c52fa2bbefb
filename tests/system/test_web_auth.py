"""Sign-in, roles per project and the audit log, over raw HTTP and the websocket, against a real
`algo-platform webserver` (tests/support/web_platform.py: two projects, a user of each role)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import subprocess

import dagster as dg
import pytest
import requests
import websockets

from tests.support.factories import PROJECT
from tests.support.postgres import REPO
from tests.support.processes import BIN, WORKSPACE, temporary_platform
from tests.support.web_platform import DAY, LAUNCH, OTHER_PROJECT, audit, audit_rows, launch_params


@pytest.fixture(scope="module")
def web(web_platform):
    return web_platform


def test_without_a_session_nothing_gets_through(web):
    anonymous = web.client()
    mutation = anonymous.graphql(LAUNCH, launch_params(PROJECT))
    assert mutation.status_code == 401
    assert "sign in" in mutation.json()["errors"][0]["message"]
    assert anonymous.graphql("{ version }").status_code == 401  # reads too
    batched = anonymous.http.post(
        f"{web.base}/graphql", json=[{"query": "{ version }"}, {"query": LAUNCH, "variables": launch_params(PROJECT)}]
    )
    assert batched.status_code == 401
    aliased = anonymous.graphql("mutation { harmless: wipeAssets(assetPartitionRanges: []) { __typename } }")
    assert aliased.status_code == 401
    page = anonymous.http.get(f"{web.base}/assets", headers={"Accept": "text/html"}, allow_redirects=False)
    assert page.status_code == 303 and "/auth/sign-in?next=" in page.headers["location"]

    async def connect() -> str:
        url = web.base.replace("http://", "ws://") + "/graphql"
        try:
            async with websockets.connect(url, subprotocols=["graphql-ws"], open_timeout=10) as socket:
                await socket.send(json.dumps({"type": "connection_init"}))
                return await asyncio.wait_for(socket.recv(), 10)
        except websockets.exceptions.InvalidStatus as refused:
            return f"refused {refused.response.status_code}"

    assert asyncio.run(connect()) == "refused 403"  # closed before the handshake completes


def test_wrong_passwords_lock_the_name_and_are_audited(web):
    for _ in range(5):
        assert web.client().sign_in("vic", "not-the-password").status_code == 401
    locked = web.client().sign_in("vic", web.passwords["vic"])
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.json()["error"]
    outcomes = [e["outcome"] for e in audit(web, "--user", "vic") if e["action"] == "sign-in"]
    assert outcomes[-6:] == ["failed"] * 5 + ["locked"]
    # A name that is no user's is not kept: it is often the password typed into the wrong box.
    before = max((row["id"] for row in audit_rows(web)), default=0)
    unknown = web.client().sign_in("Hunter2-MySecretPassw0rd", "whatever-it-is")
    assert unknown.status_code == 401
    rows = [row for row in audit_rows(web, before) if row["action"] == "sign-in"]
    assert [(row["outcome"], row["detail"]) for row in rows] == [("failed", "no such user")]
    assert "Hunter2" not in json.dumps(audit_rows(web, before))


def test_an_editor_launches_their_project_and_is_refused_on_another(web):
    edna = web.client("edna")
    # A user tag sent by the client is replaced by the signed-in user.
    launched = edna.graphql(LAUNCH, launch_params(PROJECT, user_tag="someone-else"))
    assert launched.status_code == 200, launched.text
    result = launched.json()["data"]["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        run = instance.get_run_by_id(result["run"]["runId"])
    assert run.tags["user"] == "edna"

    refused = edna.graphql(LAUNCH, launch_params(OTHER_PROJECT))
    assert refused.status_code == 403
    message = refused.json()["errors"][0]["message"]
    assert f"launchRun on {OTHER_PROJECT} needs launcher; edna is none on {OTHER_PROJECT}" in message

    # Hidden behind an alias, a fragment and a second operation: still seen, still refused.
    hidden = """
    mutation Harmless { ...Wipe }
    fragment Wipe on Mutation { tidy: wipeAssets(assetPartitionRanges: [{assetKey: {path: ["team_b", "raw_events"]}}]) {
      __typename } }
    query Q { version }"""
    assert edna.graphql(hidden, operationName="Q").status_code == 403
    # One mutation in a batch refuses the whole batch.
    batch = edna.http.post(f"{web.base}/graphql", json=[{"query": "{ version }"}, {"query": LAUNCH,
                           "variables": launch_params(PROJECT)}])  # fmt: skip
    assert batch.status_code == 403
    # Launches must pass their parameters as variables (so they can carry the user).
    inline = edna.graphql(
        'mutation { launchRun(executionParams: {selector: {repositoryLocationName: "team_a", '
        'repositoryName: "__repository__", jobName: "team_a_ingest_job"}}) { __typename } }'
    )
    assert inline.status_code == 403 and "as a GraphQL variable" in inline.json()["errors"][0]["message"]

    entries = audit(web, "--user", "edna")
    launches = [(e["action"], e["project"], e["outcome"]) for e in entries if e["action"] == "launchRun"]
    assert ("launchRun", PROJECT, "allowed") in launches
    assert ("launchRun", OTHER_PROJECT, "denied") in launches
    assert any(e["action"] == "wipeAssets" and e["outcome"] == "denied" for e in entries)
    assert all(e["client"] == "127.0.0.1" for e in entries)


def test_a_viewer_reads_but_changes_nothing(web):
    # vic is locked out by the sign-in test; a new viewer, added as an admin would.
    viewer = web.client()
    web.passwords["vera"] = secrets.token_urlsafe(18)
    add = [str(BIN / "algo-platform"), "users", "add", "vera", "--password-stdin"]
    subprocess.run(add, input=web.passwords["vera"], env=web.env, check=True, capture_output=True, text=True, cwd=REPO)
    web.users("grant", "vera", PROJECT, "viewer")
    assert viewer.sign_in("vera", web.passwords["vera"]).status_code == 200
    assets = viewer.graphql("{ assetNodes { assetKey { path } } }")
    assert assets.status_code == 200
    assert [PROJECT, "cleaned_events"] in [n["assetKey"]["path"] for n in assets.json()["data"]["assetNodes"]]
    refused = viewer.graphql(LAUNCH, launch_params(PROJECT))
    assert refused.status_code == 403 and "needs launcher; vera is viewer" in refused.json()["errors"][0]["message"]
    # Dagster's own permissions follow the role, so the UI greys out what a viewer may not do.
    permissions = viewer.graphql(
        f'{{ workspaceLocationEntryOrError(name: "{PROJECT}") {{ ... on WorkspaceLocationEntry {{ '
        "permissions { permission value } } } }"
    ).json()["data"]["workspaceLocationEntryOrError"]["permissions"]
    assert {"permission": "launch_pipeline_execution", "value": False} in permissions


def test_unknown_mutations_are_refused_even_for_platform_admins(web):
    root = web.client("root")
    assert root.graphql("mutation { someMutationFromAFutureDagster(id: 1) { ok } }").status_code == 403
    reload_all = root.graphql("mutation { reloadWorkspace { __typename } }")
    assert reload_all.status_code == 200, reload_all.text  # a platform-wide action: platform admins only
    edna = web.client("edna")
    refused = edna.graphql("mutation { reloadWorkspace { __typename } }")
    assert refused.status_code == 403 and "only a platform admin" in refused.json()["errors"][0]["message"]


def test_a_mutation_on_the_websocket_is_refused(web):
    edna = web.client("edna")
    cookie = "; ".join(f"{c.name}={c.value}" for c in edna.http.cookies)

    async def exchange() -> list[dict]:
        url = web.base.replace("http://", "ws://") + "/graphql"
        headers = {"Cookie": cookie}
        async with websockets.connect(url, subprotocols=["graphql-ws"], additional_headers=headers) as socket:
            await socket.send(json.dumps({"type": "connection_init"}))
            answers = [json.loads(await asyncio.wait_for(socket.recv(), 10))]
            start = {"type": "start", "id": "1", "payload": {"query": LAUNCH, "variables": launch_params(PROJECT)}}
            await socket.send(json.dumps(start))
            answers.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
            return answers

    ack, refused = asyncio.run(exchange())
    assert ack["type"] == "connection_ack"
    assert refused["type"] == "error" and "not the websocket" in refused["payload"][0]["message"]


def test_revoking_a_role_or_disabling_a_user_applies_to_open_sessions(web):
    lars = web.client("lars")
    assert lars.graphql(LAUNCH, launch_params(OTHER_PROJECT)).json()["data"]["launchRun"]["__typename"] == (
        "LaunchRunSuccess"
    )
    web.users("revoke", "lars", OTHER_PROJECT)
    assert lars.graphql(LAUNCH, launch_params(OTHER_PROJECT)).status_code == 403
    web.users("disable", "lars")
    assert lars.graphql("{ version }").status_code == 401
    web.users("enable", "lars")
    assert lars.graphql("{ version }").status_code == 401  # the session ended; signing in again works
    assert lars.sign_in("lars", web.passwords["lars"]).status_code == 200


def test_upload_through_the_server_lands_in_the_project_and_is_audited(web, tmp_path):
    events = tmp_path / "phone-export.csv"
    # The team's own column names, mapped on the command line as with a direct upload.
    events.write_text(f"userId,movieId,timestamp\n1,10,{DAY}T08:00:00Z\n2,11,{DAY}T09:00:00Z\n")
    env = {**web.env, "ALGO_PLATFORM_PASSWORD": web.passwords["edna"]}
    command = [str(BIN / "algo-platform"), "upload", str(events), "--date", DAY, "--server", web.base, "--user", "edna"]
    command += ["--map", "user_id=userId", "--map", "item_id=movieId", "--map", "ts=timestamp"]
    done = subprocess.run([*command, "--project", PROJECT], env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"landed 2 rows in {PROJECT} for {DAY}" in done.stdout
    landed = list((web.tmp / "storage" / "projects" / PROJECT / "landing" / "events" / DAY).glob("*.csv"))
    assert [p.name for p in landed] == ["phone-export.csv"]
    mapping = json.loads(landed[0].with_name("phone-export.csv.columns.json").read_text())
    assert mapping == {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}

    refused = subprocess.run([*command, "--project", OTHER_PROJECT], env=env, capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 1 and "needs editor; you are none" in refused.stderr
    assert not (web.tmp / "storage" / "projects" / OTHER_PROJECT / "landing" / "events" / DAY).exists()

    broken = tmp_path / "broken.csv"
    broken.write_text("user_id,item_id,ts\n1,10,not-a-time\n")
    bad = subprocess.run(
        [str(BIN / "algo-platform"), "upload", str(broken), "--date", DAY, "--server", web.base, "--user", "edna",
         "--project", PROJECT], env=env, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert bad.returncode == 1 and "broken.csv" in bad.stderr

    uploads = [(e["project"], e["outcome"]) for e in audit(web, "--user", "edna") if e["action"] == "upload"]
    assert uploads == [(PROJECT, "allowed"), (OTHER_PROJECT, "denied"), (PROJECT, "failed")]


def test_a_projects_admin_manages_roles_on_their_project_only(web):
    ada = web.client("ada")  # admin of team_a

    def post(session, action: str, **form) -> requests.Response:
        return session.http.post(f"{web.base}/platform/users/{action}", data={**form, "csrf": session.csrf})

    granted = post(ada, "grant", user="lars", project=PROJECT, role="viewer")
    assert granted.status_code == 200 and f"lars is viewer on {PROJECT}" in granted.text
    lars = web.client()
    lars.sign_in("lars", web.passwords["lars"])
    assert lars.graphql("{ version }").status_code == 200
    refused = post(ada, "grant", user="ada", project=OTHER_PROJECT, role="admin")
    assert refused.status_code == 403 and f"changing roles on {OTHER_PROJECT} needs admin" in refused.text
    assert post(ada, "add", user="mallory", password="x" * 20).status_code == 403  # platform admins only
    forged = ada.http.post(
        f"{web.base}/platform/users/grant", data={"user": "ada", "project": PROJECT, "role": "admin"}
    )
    assert forged.status_code == 400  # no CSRF token: refused
    assert post(ada, "revoke", user="lars", project=PROJECT).status_code == 200

    root = web.client("root")
    assert post(root, "add", user="nina", password=secrets.token_urlsafe(16)).status_code == 200
    assert post(root, "disable", user="nina", disabled="1").status_code == 200
    targets = ("lars", "ada", "nina", "mallory")
    changes = [(e["user"], e["action"], e["project"], e["outcome"]) for e in audit(web) if e["target"] in targets]
    assert ("ada", "users.grant", PROJECT, "allowed") in changes
    assert ("ada", "users.grant", OTHER_PROJECT, "denied") in changes
    assert ("ada", "users.add", None, "denied") in changes
    assert ("root", "users.disable", None, "allowed") in changes


def test_proxy_headers_count_only_from_trusted_proxies(tmp_path):
    """Proxy mode, in process: the same middleware, Dagster's app replaced by one that echoes the user."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from algo_platform.accounts.store import Accounts
    from algo_platform.web.identity import AuthSettings
    from algo_platform.web.signin import PRINCIPAL, signed_in

    def whoami(request):
        principal = request.scope[PRINCIPAL]
        return JSONResponse({"user": principal.name, "roles": {p: r.name for p, r in principal.roles.items()}})

    app = Starlette(routes=[Route("/whoami", whoami)])
    accounts = Accounts(f"sqlite:///{tmp_path / 'accounts.db'}")
    settings = AuthSettings(
        mode="proxy", session_secret="s" * 32, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),)
    )
    protected = signed_in(app, accounts, targets=None, settings=settings)
    headers = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "algo-platform:team_a:admin"}
    untrusted = TestClient(protected, client=("192.0.2.7", 4000)).get("/whoami", headers=headers)
    assert untrusted.status_code == 403 and "not a trusted proxy" in untrusted.text
    trusted = TestClient(protected, client=("10.1.2.3", 4000)).get("/whoami", headers=headers)
    assert trusted.json() == {"user": "mallory", "roles": {"team_a": "admin"}}
    # The proxy signs people in: the platform's own sign-in form is not there to go around it.
    assert TestClient(protected, client=("10.1.2.3", 4000)).post("/auth/sign-in", headers=headers).status_code == 403
    denied = [e for e in accounts.entries() if e.outcome == "denied"]
    assert denied and denied[0].client == "192.0.2.7"


def test_the_audit_log_is_append_only(tmp_path):
    import sqlalchemy as sa

    from algo_platform.accounts.store import Accounts

    accounts = Accounts(f"sqlite:///{tmp_path / 'accounts.db'}")
    accounts.record("sign-in", "allowed", user="edna")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), accounts.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE algo_platform_audit SET outcome = 'denied'")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), accounts.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM algo_platform_audit")
    assert [e.outcome for e in accounts.entries()] == ["allowed"]


def test_the_webserver_will_not_start_without_a_session_secret(tmp_path):
    env, _ = temporary_platform(tmp_path)
    env.pop("ALGO_PLATFORM_SESSION_SECRET", None)
    done = subprocess.run(
        [str(BIN / "algo-platform"), "webserver", "-w", env[WORKSPACE], "-p", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "ALGO_PLATFORM_SESSION_SECRET is not set" in done.stderr
    # Its options are no secret: --help prints them without one.
    helped = subprocess.run([str(BIN / "algo-platform"), "webserver", "--help"], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert helped.returncode == 0 and "--port" in helped.stdout, helped.stderr
