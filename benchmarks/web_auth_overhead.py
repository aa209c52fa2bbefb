"""What sign-in and the per-mutation check cost a request, against Dagster's own app in the same run.

`python -m benchmarks.web_auth_overhead [--requests 200]` prints Markdown and writes
`results/web_auth_overhead.json`. Both apps are built from one workspace process context (the
shipped workspace.yaml, its code servers started once), in process, and driven through
Starlette's TestClient, so the only difference is the middleware: the session cookie checked and
the user's roles read from the instance's SQLite on every request, each mutation parsed, judged,
attributed to its project, audited and tagged. Median of `requests` per kind.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]

REQUESTS = {
    "version query (cheapest read)": ("{ version }", {}),
    "asset nodes (a UI read)": ("{ assetNodes { assetKey { path } groupName } }", {}),
    "terminate an unknown run (allowed mutation)": (
        "mutation($id: String!) { terminateRun(runId: $id) { __typename } }",
        {"id": "00000000-0000-0000-0000-000000000000"},
    ),
}


VIEWER_READS = {
    "a viewer's runs list (scoped)": "{ runsOrError(limit: 50) { ... on Runs { results { runId } } } }",
    "a viewer's asset nodes (scoped)": "{ assetNodes { assetKey { path } groupName } }",
}


def _median_ms(call, count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code in (200, 303, 403), answer.text[:300]
    return statistics.median(times)


def run(count: int) -> list[dict]:
    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_webserver.app import create_app_from_workspace_process_context
    from starlette.testclient import TestClient

    from algo_platform.accounts.principal import Role
    from algo_platform.accounts.store import Accounts
    from algo_platform.web.identity import AuthSettings
    from algo_platform.web.server import scope_permissions_to_users
    from algo_platform.web.signin import signed_in
    from algo_platform.web.targets import WorkspaceTargets

    folder = Path(tempfile.mkdtemp(prefix="algo-platform-web-bench-"))
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", folder / "dagster.yaml")
    rows = []
    try:
        with (
            dg.DagsterInstance.from_config(str(folder)) as instance,
            WorkspaceProcessContext(instance, WorkspaceFileTarget([str(REPO / "workspace.yaml")])) as context,
        ):
            plain = TestClient(create_app_from_workspace_process_context(context))
            accounts = Accounts.for_instance(instance)
            password = secrets.token_urlsafe(18)
            accounts.add_user("bench", password, platform_admin=True)
            accounts.add_user("viewer", password)
            accounts.grant("viewer", "shortvideo", Role.viewer)
            settings = AuthSettings(session_secret=secrets.token_urlsafe(32), projects_dir=REPO / "projects")
            guarded_app = create_app_from_workspace_process_context(context)
            scope_permissions_to_users(context)
            signed = signed_in(guarded_app, accounts, WorkspaceTargets(context), settings)

            def session(user: str, answers: list | None = None) -> TestClient:
                client = TestClient(signed)
                page = client.get("/auth/sign-in")
                token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                form = {"username": user, "password": password, "csrf": token}
                signed_in_answer = client.post("/auth/sign-in", data=form, follow_redirects=False)
                if answers is not None:
                    answers.append(signed_in_answer)
                return client

            def sign_in_answer():
                answers = []
                session("viewer", answers)
                return answers[0]

            admin, viewer = session("bench"), session("viewer")
            for kind, (query, variables) in REQUESTS.items():
                body = {"query": query, "variables": variables}
                _median_ms(lambda b=body: plain.post("/graphql", json=b), 5)  # warm both
                baseline = _median_ms(lambda b=body: plain.post("/graphql", json=b), count)
                measured = _median_ms(lambda b=body: admin.post("/graphql", json=b), count)
                rows.append({"request": kind, "dagster_ms": baseline, "signed_in_ms": measured})
            # A viewer of one project: the reads that are scoped to their projects.
            for kind, query in VIEWER_READS.items():
                body = {"query": query}
                _median_ms(lambda b=body: viewer.post("/graphql", json=b), 5)
                baseline = _median_ms(lambda b=body: plain.post("/graphql", json=b), count)
                measured = _median_ms(lambda b=body: viewer.post("/graphql", json=b), count)
                rows.append({"request": kind, "dagster_ms": baseline, "signed_in_ms": measured})
            signing_in = _median_ms(sign_in_answer, max(5, count // 10))
            rows.append({"request": "sign-in (argon2id check, session started)", "dagster_ms": None,
                         "signed_in_ms": signing_in})  # fmt: skip
            refused = {
                "query": "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }",
                "variables": {
                    "p": {
                        "selector": {
                            "repositoryLocationName": "shortvideo",
                            "repositoryName": "__repository__",
                            "jobName": "shortvideo_ingest_job",
                        }
                    }
                },
            }
            refusal = _median_ms(lambda: viewer.post("/graphql", json=refused), count)
            rows.append({"request": "a viewer's launch (refused, never reaches Dagster)", "dagster_ms": None,
                         "signed_in_ms": refusal})  # fmt: skip
            accounts.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def render(rows: list[dict], count: int) -> str:
    lines = [
        f"Median of {count} requests each, in process (Starlette TestClient), same workspace.",
        "",
        "| request | Dagster alone | signed in, judged | added | ratio |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        base, measured = row["dagster_ms"], row["signed_in_ms"]
        if base is None:
            lines.append(f"| {row['request']} | - | {measured:.1f} ms | - | - |")
        else:
            lines.append(
                f"| {row['request']} | {base:.1f} ms | {measured:.1f} ms | {measured - base:+.1f} ms "
                f"| {measured / base:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default=str(RESULTS / "web_auth_overhead.json"))
    args = parser.parse_args()
    rows = run(args.requests)
    print(render(rows, args.requests))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"requests": args.requests, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
