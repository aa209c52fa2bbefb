"""The shipped web entry point refuses cross-site writes: a page in the operator's browser cannot
launch runs on the UI at 127.0.0.1. Drives `algo-platform webserver` as a real process."""

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.support.postgres import REPO
from tests.support.processes import BIN, free_port, temporary_platform, wait_for

MUTATION = "mutation { __typename }"  # a mutation document that changes nothing


@pytest.fixture(scope="module")
def server(web_platform):
    return web_platform


def _status(url: str, body: bytes | None = None, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def post_graphql(base: str, query: str, **headers: str) -> int:
    body = json.dumps({"query": query}).encode()
    return _status(f"{base}/graphql", body, {"Content-Type": "application/json", **headers})


def test_mutations_from_another_origin_are_refused(server):
    server = server.base
    assert post_graphql(server, MUTATION, Origin="https://evil.example") == 403
    assert post_graphql(server, MUTATION, Origin="null") == 403
    assert post_graphql(server, MUTATION, **{"Sec-Fetch-Site": "cross-site"}) == 403


def test_the_ui_itself_and_api_clients_still_work(server):
    """Same-origin and non-browser requests pass the guard (and then need a signed-in user)."""
    root = server.client("root")
    assert root.http.post(f"{server.base}/graphql", json={"query": MUTATION}, headers={"Origin": server.base}).ok
    assert root.graphql(MUTATION).status_code == 200  # an API client: no browser origin
    assert root.http.get(f"{server.base}/graphql?query=" + urllib.request.quote("{ version }")).status_code == 200
    assert post_graphql(server.base, MUTATION) == 401  # the guard lets it through; sign-in does not


def test_mutations_over_get_and_form_posts_are_refused(server):
    root = server.client("root")
    server = server.base
    assert root.http.get(f"{server}/graphql?query=" + urllib.request.quote(MUTATION)).status_code == 405
    # Dagster reads the last `query` parameter: a harmless first one must not hide a mutation.
    smuggled = "query=" + urllib.request.quote("{ version }") + "&query=" + urllib.request.quote(MUTATION)
    assert root.http.get(f"{server}/graphql?{smuggled}").status_code == 405  # signed in, still refused
    form = root.http.post(f"{server}/graphql", data=f"query={MUTATION}", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415  # signed in, still refused: Dagster would read the URL, not the form


def test_a_hostile_host_name_pointing_at_loopback_is_refused(server):
    """DNS rebinding: evil.example resolves to 127.0.0.1, so its pages are 'same-origin' with it."""
    server = server.base
    port = server.rsplit(":", 1)[1]
    headers = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    assert post_graphql(server, MUTATION, **headers) == 400


def test_a_websocket_from_another_origin_is_refused(server):
    cookie = "; ".join(f"{c.name}={c.value}" for c in server.client("root").http.cookies)
    server = server.base
    url = server.replace("http://", "ws://") + "/graphql"

    async def connect(origin: str) -> str:
        try:
            headers = {"Cookie": cookie}
            async with websockets.connect(
                url, origin=origin, subprotocols=["graphql-ws"], open_timeout=10, additional_headers=headers
            ):
                return "open"
        except websockets.exceptions.InvalidStatus as refused:
            return f"refused {refused.response.status_code}"

    assert asyncio.run(connect("https://evil.example")) == "refused 403"
    assert asyncio.run(connect(server)) == "open"


def _processes_using(home: str) -> list[int]:
    """Pids of processes whose environment points at this DAGSTER_HOME."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_make_dev_serves_the_guarded_ui_and_stops_everything_it_started(tmp_path):
    env, home = temporary_platform(tmp_path)
    port = free_port()
    dev = subprocess.Popen(
        [str(BIN / "algo-platform"), "dev", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _status(f"{base}/server_info") == 200, "algo-platform dev", tmp_path)
        assert post_graphql(base, MUTATION, Origin="https://evil.example") == 403
        assert len(_processes_using(str(home))) >= 3  # dev, the daemon, the webserver (and code servers)
    finally:
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _processes_using(str(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_using(str(home)) == []
