"""Every mutation Dagster's schema lists, in every form the server accepts, as each role: exactly the
allowed operations reach Dagster's GraphQL executor, and each allowed or refused one has its audit row.

In process: the platform's middleware (guard, sign-in, roles, audit) in front of Dagster's own
GraphQL HTTP endpoint (dagster-webserver's GraphQLServer), whose executor is replaced by a spy that
records the document, variables and operation it would run. The same forms against a real server
are in test_web_attacks.py.
"""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import quote

import pytest
from graphql import OperationDefinitionNode, OperationType, parse
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from algo_platform.accounts.principal import Role
from algo_platform.accounts.store import Accounts
from algo_platform.web.guard import guarded
from algo_platform.web.identity import AuthSettings
from algo_platform.web.policy import RULES, USER_TAG
from algo_platform.web.signin import signed_in

HARMLESS = {"__typename", "logTelemetry", "setNuxSeen"}  # the signed-in user's own UI state
ROLES = {"root": None, "ada": Role.admin, "edna": Role.editor, "lars": Role.launcher, "vic": Role.viewer, "nora": None}


class Targets:
    """What these requests name belongs to team_a (a request naming nothing belongs to no project)."""

    def of_run(self, run_id):
        return "team_a" if run_id == "run-a" else None

    def of_backfill(self, backfill_id):
        return {"team_a"} if backfill_id == "bf-a" else {None}

    def of_asset(self, path):
        return "team_a" if path and path[0] == "team_a" else None

    def of_instigator(self, *ids):
        return "team_a" if "sensor-a" in ids else None

    def readable_by(self, run_id):
        return "team_a"


class SpyServer:
    """Dagster's GraphQL HTTP endpoint with its executor replaced by a recorder."""

    def __init__(self):
        from dagster_graphql.schema import create_schema
        from dagster_webserver.graphql import GraphQLServer

        executed = self.executed = []

        class Server(GraphQLServer):
            def build_graphql_schema(self):
                return create_schema()

            def build_graphql_middleware(self):
                return []

            def build_middleware(self):
                return []

            def build_routes(self):
                return [Route("/graphql", self.graphql_http_endpoint, methods=["GET", "POST"])]

            def _make_request_context(self, conn):
                raise AssertionError("the spy never builds a request context")

            async def execute_graphql_request(self, request, query, variables, operation_name):
                executed.append({"query": query, "variables": variables, "operation": operation_name})
                return JSONResponse({"data": {}})

        self.app = Server().create_asgi_app()


def mutation_fields(query: str, operation: str | None) -> set[str]:
    """The mutation fields Dagster would run for this document and operation name."""
    document = parse(query)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation is None or (o.name and o.name.value == operation)]
    fields = set()
    for op in chosen[:1]:
        if op.operation == OperationType.MUTATION:
            fields |= {s.name.value for s in op.selection_set.selections if hasattr(s, "name")}
    fragments = [d for d in document.definitions if d.__class__.__name__ == "FragmentDefinitionNode"]
    for fragment in fragments:
        fields |= {s.name.value for s in fragment.selection_set.selections if hasattr(s, "name")}
    return fields


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transports")
    accounts = Accounts(f"sqlite:///{folder / 'accounts.db'}")
    spy = SpyServer()
    settings = AuthSettings(session_secret=secrets.token_urlsafe(32), projects_dir=folder)
    app = guarded(signed_in(spy.app, accounts, Targets(), settings), ["testserver"])
    clients = {}
    for name, role in ROLES.items():
        password = secrets.token_urlsafe(12)
        accounts.add_user(name, password, platform_admin=name == "root")
        if role is not None:
            accounts.grant(name, "team_a", role)
        client = TestClient(app, base_url="http://testserver")
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/auth/sign-in").text).group(1)
        answer = client.post("/auth/sign-in", data={"username": name, "password": password, "csrf": token},
                             headers={"Accept": "application/json"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        clients[name] = client
    return accounts, spy, clients


def audit_rows_after(accounts: Accounts, last_id: int) -> list:
    """The audit rows written since row `last_id`."""
    import sqlalchemy as sa

    from algo_platform.accounts.tables import audit

    with accounts.engine.connect() as connection:
        return list(connection.execute(sa.select(audit).where(audit.c.id > last_id).order_by(audit.c.id)))


def forms(mutation: str) -> dict[str, tuple]:
    """(method, path, headers, body) of one mutation in each form a client could send it."""
    plain = f"mutation {{ {mutation} {{ __typename }} }}"
    as_json = json.dumps({"query": plain}).encode()
    harmless = json.dumps({"query": "{ version }"}).encode()
    aliased = json.dumps({"query": f"mutation {{ innocent: {mutation} {{ __typename }} }}"}).encode()
    fragment = json.dumps({"query": f"mutation M {{ ...F }} fragment F on Mutation {{ {mutation} {{ __typename }} }}",
                           "operationName": "M"}).encode()  # fmt: skip
    defaults = json.dumps({"query": f'mutation($x: String = "a") {{ {mutation} {{ __typename }} }}'}).encode()
    batched = json.dumps([{"query": "{ version }"}, {"query": plain}]).encode()
    in_url = f"/graphql?query={quote(plain)}"
    return {
        "json body": ("POST", "/graphql", [("content-type", "application/json")], as_json),
        "json, upper-case type": ("POST", "/graphql", [("content-type", "Application/JSON")], as_json),
        "aliased": ("POST", "/graphql", [("content-type", "application/json")], aliased),
        "in a fragment": ("POST", "/graphql", [("content-type", "application/json")], fragment),
        "variable default": ("POST", "/graphql", [("content-type", "application/json")], defaults),
        "batched": ("POST", "/graphql", [("content-type", "application/json")], batched),
        "URL of a JSON POST": ("POST", in_url, [("content-type", "application/json")], harmless),
        "URL, upper-case type": ("POST", in_url, [("content-type", "Application/JSON")], harmless),
        "two content types": (
            "POST",
            in_url,
            [("content-type", "application/json"), ("content-type", "text/plain")],
            harmless,
        ),  # fmt: skip
        "form": (
            "POST",
            "/graphql",
            [("content-type", "application/x-www-form-urlencoded")],
            f"query={quote(plain)}".encode(),
        ),  # fmt: skip
        "text/plain": ("POST", "/graphql", [("content-type", "text/plain")], as_json),
        "application/graphql": ("POST", "/graphql", [("content-type", "application/graphql")], plain.encode()),
        "GET": ("GET", in_url, [], b""),
    }


def send(client: TestClient, method: str, path: str, headers: list, body: bytes):
    # httpx keeps repeated headers when given as a list of pairs.
    return client.request(method, path, headers=headers, content=body or None)


def test_only_judged_and_allowed_mutations_reach_dagster_and_each_is_audited(platform):
    accounts, spy, clients = platform
    mutations = sorted(RULES)
    allowed_for = {}  # (user, mutation, form) -> reached Dagster
    last_id = max((row.id for row in audit_rows_after(accounts, 0)), default=0)
    for user, client in clients.items():
        for mutation in mutations:
            for form, (method, path, headers, body) in forms(mutation).items():
                before = len(spy.executed)
                answer = send(client, method, path, headers, body)
                reached = spy.executed[before:]
                rows = audit_rows_after(accounts, last_id)
                last_id = max((row.id for row in rows), default=last_id)
                assert all(row.user_name == user for row in rows)
                ran = set().union(*(mutation_fields(r["query"], r["operation"]) for r in reached)) if reached else set()
                allowed_for[(user, mutation, form)] = mutation in ran
                what = f"{user} {mutation} as {form}: {answer.status_code}"
                if mutation in ran:
                    assert answer.status_code == 200, what
                    # Dagster ran exactly the judged document, from the JSON body, tagged with the user.
                    assert reached[0]["query"] in body.decode(), what
                    # The decision, then (for a mutation on something) what Dagster answered: the spy
                    # answers no result, which the audit log reads as a failure.
                    decisions = [r for r in rows if r.outcome == "allowed"]
                    assert decisions and {r.action for r in decisions} >= {mutation}, what
                    outcomes = [r for r in rows if r.outcome != "allowed"]
                    assert all(r.outcome == "failed" and "no result" in r.detail for r in outcomes), what
                    assert bool(outcomes) == (mutation not in HARMLESS), what
                else:
                    assert answer.status_code in (400, 401, 403, 405, 415), what
                    assert rows and any(r.outcome == "denied" for r in rows), what
                    assert all(r.outcome != "allowed" for r in rows), what
    # Only a JSON body (in any case of its media type, aliased or in a fragment) ever reaches Dagster.
    reaching_forms = {form for (_, _, form), reached in allowed_for.items() if reached}
    assert reaching_forms <= {"json body", "json, upper-case type", "aliased", "in a fragment"}
    # A user with no role reaches Dagster only with their own UI state; a platform admin with every
    # mutation the platform knows (none of these name a project, so nobody else may run the rest).
    for user in ("nora", "vic", "lars", "edna", "ada"):
        assert {m for (u, m, f), r in allowed_for.items() if u == user and r} == HARMLESS & set(mutations), user
    assert {m for (u, m, f), r in allowed_for.items() if u == "root" and r} == set(mutations)


def test_a_launch_reaches_dagster_with_the_users_tag_and_the_project(platform):
    accounts, spy, clients = platform
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    params = {"p": {"selector": {"repositoryLocationName": "team_a", "repositoryName": "r", "jobName": "j"},
                    "executionMetadata": {"tags": [{"key": USER_TAG, "value": "root"},
                                                   {"key": "dagster-k8s/config", "value": "{}"}]}}}  # fmt: skip
    for user, reaches in (("lars", True), ("edna", True), ("vic", False), ("nora", False)):
        before = len(spy.executed)
        answer = clients[user].post("/graphql", json={"query": launch, "variables": params})
        reached = spy.executed[before:]
        assert bool(reached) == reaches, answer.text
        if reached:
            tags = {t["key"]: t["value"] for t in reached[0]["variables"]["p"]["executionMetadata"]["tags"]}
            assert tags == {USER_TAG: user, "algo_platform/project": "team_a"}
