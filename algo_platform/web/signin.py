"""Sign-in and roles in front of Dagster's web app (ASGI middleware).

Every request needs a user (identity.py says who): a signed session cookie naming a live
server-side session (local users, `/auth/sign-in`; signing out ends it), or, in proxy mode, the
user and groups headers an identity-aware proxy sets, accepted only from connections that come
from ALGO_PLATFORM_TRUSTED_PROXIES. The user's roles are read from the database on every request, so a
revoked role or a disabled user takes effect at once (on an open websocket, at its next frame or
within WEBSOCKET_RECHECK_SECONDS).

Each GraphQL mutation, over HTTP or on the websocket, is judged by `policy`: the project that owns
its target and the role it needs. Dagster is then handed exactly the judged document (one JSON
body, nothing in the URL). Refusals and allowed mutations are written to the audit log; launches
carry the user in Dagster's `user` tag and lose the tags the platform owns. The websocket carries
subscriptions: a mutation sent on it is refused whoever sends it (the UI sends mutations over
HTTP). What a user may read is shaped in Dagster's request context (server.py, visibility.py).

The middleware also serves the platform's pages, each module a page: sign-in, sign-out, `/platform`
and `/platform/audit` (web/account_pages.py), `/platform/upload` (web/upload_page.py),
`/platform/users` (web/user_admin.py), the data, models, releases and GPU pages. They record to the
audit log through `site.audit` (web/audit_trail.py) and check forms with web/csrf.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from html import escape
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algo_platform.accounts.principal import Principal, Role
from algo_platform.accounts.store import Accounts
from algo_platform.core.project import project_names
from algo_platform.web import pages
from algo_platform.web.account_pages import AccountPages
from algo_platform.web.audit_trail import AuditTrail
from algo_platform.web.content_policy import with_content_policy
from algo_platform.web.data_page import DataPage, static_file
from algo_platform.web.gpu_page import GpuPage
from algo_platform.web.identity import (
    SESSION_SECONDS,
    AuthSettings,
    Identities,
    request_headers,
)
from algo_platform.web.models_page import ModelsPage
from algo_platform.web.policy import (
    TAG_SLOTS,
    Action,
    Targets,
    UnreadableRequest,
    has_mutation,
    judge,
    mutation_outcome,
    mutations,
    tag_with_user,
)
from algo_platform.web.releases_page import ReleasesPage
from algo_platform.web.scrub import scrubbing_http, scrubbing_websocket
from algo_platform.web.upload_page import UploadPage
from algo_platform.web.user_admin import UserAdmin
from algo_platform.web.visibility import log_key_refusal

PRINCIPAL = "algo_platform.principal"
WEBSOCKET_RECHECK_SECONDS = 10
MAX_GRAPHQL_BODY = 8 * 1024 * 1024
PUBLIC_PATHS = ("/server_info", "/dagit_info", "/favicon.png")
STATIC_PREFIX = pages.STATIC + "/"
# Dagster's download routes, each followed by a run id: a run's debug export, its steps' logs.
RUN_DOWNLOADS = ("/download_debug/", "/logs/")
# Dagster's REST endpoints that change state: the asset key follows the prefix.
REPORT_ENDPOINTS = ("/report_asset_materialization/", "/report_asset_check/", "/report_asset_observation/")
# Headers that describe a request's body: replaced when a judged GraphQL body is forwarded.
BODY_HEADERS = (b"content-type", b"content-length", b"transfer-encoding", b"content-encoding")


def _graphql_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"message": message}]}, status_code=status)


def _refusal(actions: list[Action], message: str) -> JSONResponse:
    """403, with each mutation's result in a shape the Dagster UI shows to the user: its launch
    dialogs show a PythonError's message, its other actions an UnauthorizedError's."""
    data = {}
    for action in actions:
        reason = f"Refused by algo-platform: {action.reason or message}"
        if action.mutation in TAG_SLOTS:
            data[action.response_key] = {
                "__typename": "PythonError", "message": reason, "className": "Refused", "stack": [], "errorChain": []
            }  # fmt: skip
        else:
            data[action.response_key] = {"__typename": "UnauthorizedError", "message": reason}
    return JSONResponse({"data": data, "errors": [{"message": message}]}, status_code=403)


def _transport_refusal(scope: Scope) -> tuple[int, str] | None:
    """Why a GraphQL POST's form is refused: Dagster must read the document that was judged."""
    types = [v for k, v in scope["headers"] if k.lower() == b"content-type"]
    if len(types) != 1 or types[0].split(b";")[0].strip().lower() != b"application/json":
        return 415, "a GraphQL POST needs exactly one Content-Type header: application/json"
    in_url = set(parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    if in_url & {"query", "variables", "operationName"}:
        return 400, "a GraphQL POST carries query, variables and operationName in its JSON body, not in the URL"
    return None


def _mutation_in_url(scope: Scope) -> bool:
    """Whether any `query` value in the URL defines a mutation (Dagster reads the last one, a naive check the first)."""
    queries = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("query", [])
    return any(has_mutation(query) for query in queries)


def _launch_detail(action: Action) -> str:
    """What an allowed launch changed or set beyond its target, for its audit row."""
    notes = []
    if action.dropped_tags:
        notes.append("platform-owned tags removed: " + ", ".join(sorted(action.dropped_tags)))
    if action.launch_settings:
        notes.append("launch-time settings: " + json.dumps(action.launch_settings, sort_keys=True))
    return "; ".join(notes)


def platform_link(prefix: str) -> bytes:
    """A small link to the platform's pages, fixed in a corner of every Dagster UI page (Dagster's
    content policy allows inline styles, not scripts: this is markup only)."""
    style = (
        "position:fixed;right:12px;bottom:12px;z-index:1000;padding:6px 12px;border-radius:16px;"
        "background:#4f43dd;color:#fff;font:13px system-ui,sans-serif;text-decoration:none;"
        "box-shadow:0 1px 4px rgba(0,0,0,.25)"
    )
    href = escape(f"{prefix}/platform/data")
    return f"<a id='algo-platform-link' href='{href}' style='{style}'>Data, upload, users</a>".encode()


def with_platform_link(send: Send, prefix: str) -> Send:
    """`send` for one response, adding `platform_link` before </body> when the response is an HTML page."""
    state: dict = {}

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict((k.lower(), v) for k, v in message.get("headers", []))
            if headers.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in headers:
                state["start"], state["body"] = message, bytearray()
                return
            await send(message)
            return
        if message["type"] == "http.response.body" and "start" in state:
            state["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            body = bytes(state["body"]).replace(b"</body>", platform_link(prefix) + b"</body>", 1)
            start = state.pop("start")
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*kept, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return sending


class SignedIn:
    """The middleware (see the module docstring); wrap it in a SessionMiddleware (`signed_in` does)."""

    def __init__(self, app: ASGIApp, accounts: Accounts, targets: Targets, settings: AuthSettings, prefix: str = ""):
        self.app, self.accounts, self.targets, self.settings, self.prefix = app, accounts, targets, settings, prefix
        self.identities = Identities(accounts, settings)
        self.audit = AuditTrail(accounts, self.identities)
        self.routes: dict[tuple[str, str], Callable] = AccountPages(self).routes()
        self.data_page = DataPage(self)
        self.routes |= UserAdmin(self).routes() | UploadPage(self).routes() | self.data_page.routes()
        self.routes |= GpuPage(self).routes()
        self.models_page = ModelsPage(self)
        self.releases_page = ReleasesPage(self)
        if settings.mode == "proxy":  # the proxy signs people in and out
            self.routes = {key: route for key, route in self.routes.items() if not key[1].startswith("/auth/")}

    def known_projects(self) -> list[str]:
        return project_names(self.settings.projects_dir)

    # The entry point ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(self.prefix) or "/"
        method = scope.get("method", "WEBSOCKET")
        if scope["type"] == "http" and path.startswith(("/platform", "/auth")):
            send = with_content_policy(send)
        if path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if path.startswith(STATIC_PREFIX) and method in ("GET", "HEAD"):
            # The stylesheet and scripts of the platform's pages (the sign-in page's too): nothing private.
            found = static_file(path.removeprefix(STATIC_PREFIX))
            await (found or PlainTextResponse("no such file", 404))(scope, receive, send)
            return
        if (method, path) in {("GET", "/auth/sign-in"), ("POST", "/auth/sign-in")} and self.settings.mode == "local":
            response = await self.routes[(method, path)](Request(scope, receive), None)
            await response(scope, receive, send)
            return
        identity = await run_in_threadpool(self.identities.identify, scope)
        if isinstance(identity, str):
            await run_in_threadpool(self.audit.record, "request", "denied", scope, target=path, detail=identity)
            await self._refuse(scope, receive, send, 403, identity)
            return
        if identity is None:
            await self._refuse(scope, receive, send, 401, "sign in first", redirect=path)
            return
        scope[PRINCIPAL] = identity
        if scope["type"] == "websocket":
            if not identity.platform_admin:
                send = scrubbing_websocket(send)
            await self.app(scope, self._watch_websocket(scope, receive, send), self._recheck_websocket(scope, send))
            return
        if path == "/graphql" and not identity.platform_admin:
            send = scrubbing_http(send)
        handler = (
            self.routes.get((method, path))
            or self.data_page.prefixed(method, path)
            or self.models_page.prefixed(method, path)
            or self.releases_page.prefixed(method, path)
        )
        if handler is not None:
            await (await handler(Request(scope, receive), identity))(scope, receive, send)
            return
        if path == "/graphql" and method == "POST":
            await self._graphql(scope, receive, send, identity)
            return
        if path == "/graphql" and method == "GET" and _mutation_in_url(scope):
            message = "GraphQL mutations over GET are refused; send them as a JSON POST"
            await run_in_threadpool(self.audit.record, "graphql", "denied", scope, identity, target="/graphql",
                                    detail=message)  # fmt: skip
            await self._refuse(scope, receive, send, 405, message)
            return
        if path.startswith(RUN_DOWNLOADS):
            refusal = await run_in_threadpool(self._download_refusal, scope, path, identity)
            if refusal:
                await self._refuse(scope, receive, send, 404, refusal)
                return
        if method not in ("GET", "HEAD", "OPTIONS"):
            refusal = await run_in_threadpool(self._judge_rest, scope, path, method, identity)
            if refusal:
                await self._refuse(scope, receive, send, 403, refusal)
                return
        if method == "GET" and "text/html" in request_headers(scope).get("accept", ""):
            send = with_platform_link(send, self.prefix)
        await self.app(scope, receive, send)

    async def _refuse(self, scope, receive, send, status: int, message: str, redirect: str | None = None) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4000 + status, "reason": message[:120]})
            return
        accepts_html = "text/html" in request_headers(scope).get("accept", "")
        if status == 401 and redirect is not None and accepts_html and scope["method"] == "GET":
            if self.settings.mode == "local":
                target = f"{self.prefix}/auth/sign-in?next={quote(self.prefix + redirect)}"
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
            message = "sign in through the identity proxy in front of this server"
        elif status == 401 and self.settings.mode == "local":
            message = f"sign in first: open {self.prefix}/auth/sign-in (API clients: POST it the form)"
        if accepts_html:
            refusal = pages.page("Refused", f"<p class='error'>{escape(message)}</p>", self.prefix)
            await HTMLResponse(refusal, status)(scope, receive, send)
            return
        await _graphql_error(message, status)(scope, receive, send)

    # GraphQL over HTTP ------------------------------------------------------------------------

    async def _graphql(self, scope: Scope, receive: Receive, send: Send, principal: Principal) -> None:
        """Judge the JSON body, then hand Dagster exactly that document: re-serialised, as the only
        Content-Type it parses as JSON, and with no URL query string (which Dagster would otherwise
        execute instead of a body it does not recognise as JSON)."""
        refusal = _transport_refusal(scope)
        if refusal is not None:
            status, message = refusal
            refused = await run_in_threadpool(self._graphql_refusal, scope, principal, message, status)
            await refused(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_GRAPHQL_BODY:
                message = "GraphQL request too large"
                refused = await run_in_threadpool(self._graphql_refusal, scope, principal, message, 413)
                await refused(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            refused = await run_in_threadpool(
                self._graphql_refusal, scope, principal, "GraphQL POSTs must be JSON", 400
            )
            await refused(scope, receive, send)
            return
        outcome = await run_in_threadpool(self._judge_graphql, scope, request, principal)
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        forwarded_request, allowed = outcome
        forwarded = json.dumps(forwarded_request).encode()
        kept = [(k, v) for k, v in scope["headers"] if k.lower() not in BODY_HEADERS]
        headers = [*kept, (b"content-type", b"application/json"), (b"content-length", str(len(forwarded)).encode())]
        touching = [action for action in allowed if action.projects]  # not the user's own UI state
        if touching:
            send = self._recording_outcomes(scope, send, principal, touching)
        await self.app({**scope, "headers": headers, "query_string": b""}, _replay(forwarded), send)

    def _graphql_refusal(self, scope: Scope, principal: Principal, message: str, status: int) -> JSONResponse:
        self.audit.record("graphql", "denied", scope, principal, target="/graphql", detail=message)
        return _graphql_error(message, status)

    def _recording_outcomes(self, scope: Scope, send: Send, principal: Principal, actions: list[Action]) -> Send:
        """`send` for the answer to allowed mutations: once Dagster has answered, each one's outcome
        (done, or Dagster's own refusal: an unknown job, an invalid document, its UnauthorizedError)
        goes to the audit log beside the decision."""
        body = bytearray()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body":
                if len(body) <= MAX_GRAPHQL_BODY:
                    body.extend(message.get("body", b""))
                if not message.get("more_body"):  # recorded before the client has the answer
                    await run_in_threadpool(self._record_outcomes, scope, principal, actions, bytes(body))
            await send(message)

        return sending

    def _record_outcomes(self, scope: Scope, principal: Principal, actions: list[Action], body: bytes) -> None:
        for action in actions:
            done, detail = mutation_outcome(body, action.response_key)
            outcome = {True: "done", False: "failed", None: "answered"}[done]
            for project in sorted(action.projects, key=str) or [None]:
                self.audit.record(
                    action.mutation, outcome, scope, principal, project=project,
                    target=action.target, role=action.roles.get(project), detail=detail,
                )  # fmt: skip

    def _judge_graphql(self, scope: Scope, request, principal: Principal) -> tuple[dict | list, list] | Response:
        """The request to pass on (launches tagged with the user) and its allowed mutations, or the
        refusal to send."""
        items = request if isinstance(request, list) else [request]
        if not items or not all(isinstance(i, dict) and isinstance(i.get("query"), str) for i in items):
            return self._graphql_refusal(scope, principal, "a GraphQL POST is a JSON object with a query", 400)
        judged: list[tuple[dict, list[Action]]] = []
        for item in items:
            variables = item.get("variables") or {}
            if isinstance(variables, str):
                try:
                    variables = json.loads(variables)
                except json.JSONDecodeError:
                    return self._graphql_refusal(scope, principal, "variables are not valid JSON", 400)
            if not isinstance(variables, dict):
                return self._graphql_refusal(scope, principal, "variables must be a JSON object", 400)
            try:
                actions = [judge(a, principal) for a in mutations(item["query"], variables, self.targets)]
            except UnreadableRequest as error:
                self.audit.record("graphql", "denied", scope, principal, target="/graphql", detail=f"refused: {error}")
                return _graphql_error(f"refused: {error}", 400)
            judged.append(({**item, "variables": variables}, actions))
        actions = [a for _, found in judged for a in found]
        if len(items) > 1 and actions:
            for action in actions:
                action.allowed, action.reason = False, "batched GraphQL requests may not carry mutations"
        denied = [a for a in actions if not a.allowed]
        if not denied and len(judged) == 1:
            tag_with_user(judged[0][0]["variables"], judged[0][1], principal.name)
        for action in actions:
            outcome = "allowed" if not denied else ("denied" if not action.allowed else "not-run")
            for project in sorted(action.projects, key=str) or [None]:
                self.audit.record(
                    action.mutation, outcome, scope, principal, project=project, target=action.target,
                    role=action.roles.get(project, principal.describe_role(project)),
                    detail=action.reason or _launch_detail(action) or None,
                )  # fmt: skip
        if denied:
            return _refusal(actions, "refused: " + "; ".join(a.reason for a in denied))
        if isinstance(request, list):
            return [item for item, _ in judged], []
        return judged[0][0], actions

    def _download_refusal(self, scope: Scope, path: str, principal: Principal) -> str | None:
        """Why a run's debug export or step log may not be downloaded (audited), None when it may:
        `/download_debug/<run>` and `/logs/<run>/<parts...>/<out|err>`, of a run of the user's projects,
        every part a plain name (no `..`, `.`, empty part or NUL that could lead to another run's log)."""
        route, _, rest = path.lstrip("/").partition("/")
        parts = rest.split("/")
        if route == "logs":
            log_key, extension = parts[:-1], parts[-1]
            refusal = log_key_refusal(log_key) or (None if extension in ("out", "err") else "a log is out or err")
        else:
            refusal = None if len(parts) == 1 else "a debug export is /download_debug/<run id>"
            refusal = refusal or log_key_refusal(parts)
            if refusal is None and not principal.platform_admin:
                # Its events carry stack traces and the server's paths: an operator's tool.
                refusal = "a run's debug export is for platform admins; the run's page shows its events"
        run_id = parts[0] if parts else ""
        if refusal is None and not principal.platform_admin:
            project = self.targets.readable_by(run_id)
            if principal.role_on(project) is None:  # as if there were no such run
                refusal = f"no run {run_id[:64]} among your projects' runs"
        if refusal:
            self.audit.record(route, "denied", scope, principal, target=path[:256], detail=refusal)
        return refusal

    def _judge_rest(self, scope: Scope, path: str, method: str, principal: Principal) -> str | None:
        """Dagster's REST reports need an editor of the asset's project; other writes, a platform admin."""
        prefix = next((p for p in REPORT_ENDPOINTS if path.startswith(p)), None)
        project = self.targets.of_asset(path.removeprefix(prefix).split("/")) if prefix else None
        allowed = principal.platform_admin or (project is not None and (principal.role_on(project) or 0) >= Role.editor)
        reason = None if allowed else f"{method} {path} needs an editor of the asset's project ({project or 'unknown'})"
        self.audit.record(path.strip("/").split("/")[0], "allowed" if allowed else "denied", scope, principal,
                     project=project, target=path, detail=reason)  # fmt: skip
        return reason

    # The websocket ----------------------------------------------------------------------------

    def _watch_websocket(self, scope: Scope, receive: Receive, send: Send) -> Receive:
        """Passes frames on, but a frame that starts a mutation is answered with an error instead."""

        async def watched() -> Message:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return message
                current = await run_in_threadpool(self.identities.identify, scope)
                if not isinstance(current, Principal):
                    await send({"type": "websocket.close", "code": 4401, "reason": "signed out or disabled"})
                    return {"type": "websocket.disconnect", "code": 4401}
                try:
                    frame = json.loads(message.get("text") or message.get("bytes") or b"")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    frame = None
                if not isinstance(frame, dict) or frame.get("type") not in ("start", "subscribe"):
                    return message
                payload = frame.get("payload") if isinstance(frame.get("payload"), dict) else {}
                refusal = await run_in_threadpool(self._judge_frame, scope, payload, current)
                if refusal is None:
                    return message
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "error", "id": frame.get("id"), "payload": [{"message": refusal}]}
                )})  # fmt: skip

        return watched

    def _judge_frame(self, scope: Scope, payload: dict, principal: Principal) -> str | None:
        query = payload.get("query")
        if not isinstance(query, str):
            return self._frame_refusal(scope, principal, "refused: a websocket operation needs a query")
        variables = payload.get("variables") if isinstance(payload.get("variables"), dict) else {}
        try:
            actions = mutations(query, variables, self.targets)
        except UnreadableRequest as error:
            return self._frame_refusal(scope, principal, f"refused: {error}")
        for action in actions:
            self.audit.record(action.mutation, "denied", scope, principal, project=next(iter(action.projects), None),
                         target=action.target, detail="mutation sent on the websocket")  # fmt: skip
        if actions:
            return "refused: mutations go over HTTP POST /graphql, not the websocket"
        return None

    def _frame_refusal(self, scope: Scope, principal: Principal, message: str) -> str:
        self.audit.record("graphql", "denied", scope, principal, target="websocket", detail=message)
        return message

    def _recheck_websocket(self, scope: Scope, send: Send) -> Send:
        """Closes an open websocket within WEBSOCKET_RECHECK_SECONDS of its user losing access."""
        checked = time.monotonic()

        async def rechecking(message: Message) -> None:
            nonlocal checked
            if message["type"] == "websocket.send" and time.monotonic() - checked > WEBSOCKET_RECHECK_SECONDS:
                checked = time.monotonic()
                if not isinstance(await run_in_threadpool(self.identities.identify, scope), Principal):
                    await send({"type": "websocket.close", "code": 4401, "reason": "signed out or disabled"})
                    return
            await send(message)

        return rechecking


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def signed_in(app: ASGIApp, accounts: Accounts, targets: Targets, settings: AuthSettings, prefix: str = "") -> ASGIApp:
    """`app` behind sign-in and roles, with signed session cookies (itsdangerous, via Starlette)."""
    return SessionMiddleware(
        SignedIn(app, accounts, targets, settings, prefix),
        secret_key=settings.session_secret,
        session_cookie="algo_platform_session",
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.secure_cookies,
        path=prefix or "/",
    )
