"""The pages of a person's account and the platform's front door: sign-in and sign-out (local
users), the home page (your projects, their champions, last ingest and retrain) and the audit log."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from algo_platform.accounts.principal import NAME_PATTERN, Principal, Role
from algo_platform.web import pages
from algo_platform.web.audit_trail import roles_of
from algo_platform.web.csrf import csrf_ok, csrf_token
from algo_platform.web.identity import SESSION_SECONDS
from algo_platform.web.standing import standing_of, standings_table

# The Dagster UI keeps query results in the browser (IndexedDB, local storage): when one person
# signs out and another signs in on the same browser, the next must not see the last one's data.
CLEAR_SITE_DATA = {"Clear-Site-Data": '"cache", "storage"'}


class AccountPages:
    """Served by the sign-in middleware (`site`), which also guards them."""

    def __init__(self, site):
        self.site = site

    def routes(self) -> dict[tuple[str, str], Callable]:
        return {
            ("GET", "/auth/sign-in"): self.sign_in_page,
            ("POST", "/auth/sign-in"): self.sign_in,
            ("POST", "/auth/sign-out"): self.sign_out,
            ("GET", "/platform"): self.home,
            ("GET", "/platform/audit"): self.audit_page,
        }

    async def sign_in_page(self, request: Request, _principal) -> Response:
        next_path = _safe_next(request.query_params.get("next"), self.site.prefix)
        return HTMLResponse(pages.sign_in_form(csrf_token(request), next_path, self.site.prefix))

    async def sign_in(self, request: Request, _principal) -> Response:
        form = await request.form(max_files=0, max_fields=8)
        name, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        next_path = _safe_next(str(form.get("next", "")), self.site.prefix)
        wants_json = "application/json" in request.headers.get("accept", "")
        if not csrf_ok(request, form):
            return HTMLResponse(pages.sign_in_form(csrf_token(request), next_path, self.site.prefix,
                                                   "the form expired; sign in again"), 400)  # fmt: skip
        scope = request.scope
        if not re.fullmatch(NAME_PATTERN, name):
            # Never stored or echoed as given: it could carry newlines, markup or megabytes.
            await run_in_threadpool(self.site.accounts.count_attempt, "", self.site.identities.client(scope))
            await run_in_threadpool(self.site.audit.record, "sign-in", "failed", scope,
                                    detail=f"not a valid user name ({len(name)} characters)")  # fmt: skip
            return self._sign_in_refusal(request, wants_json, "wrong user name or password", next_path, "", 401)
        _, locked = await run_in_threadpool(self.site.accounts.count_attempt, name, self.site.identities.client(scope))
        # An unknown name is not kept: people type their password into the name box.
        known = await run_in_threadpool(self.site.accounts.user_state, name) is not None
        attempted = {"user": name} if known else {"detail": "no such user"}
        if locked:
            until = dt.datetime.fromtimestamp(locked, dt.UTC).strftime("%H:%M UTC")
            await run_in_threadpool(self.site.audit.record, "sign-in", "locked", scope, **attempted)
            message = f"too many failed sign-ins; try again after {until}, or ask an admin"
            return self._sign_in_refusal(request, wants_json, message, next_path, name, 429)
        if not await run_in_threadpool(self.site.accounts.verify_password, name, password):
            await run_in_threadpool(self.site.audit.record, "sign-in", "failed", scope, **attempted)
            return self._sign_in_refusal(request, wants_json, "wrong user name or password", next_path, name, 401)
        await run_in_threadpool(self.site.accounts.clear_attempts, name)
        session_id = await run_in_threadpool(self.site.accounts.start_session, name, SESSION_SECONDS)
        session = scope["session"]
        session.clear()
        session.update(user=name, at=time.time(), sid=session_id, csrf=secrets.token_urlsafe(32))
        principal = await run_in_threadpool(self.site.accounts.principal, name)
        await run_in_threadpool(
            self.site.audit.record, "sign-in", "allowed", scope, principal, role=roles_of(principal)
        )
        if wants_json:
            return JSONResponse({"user": name, "csrf": session["csrf"]}, headers=CLEAR_SITE_DATA)
        return RedirectResponse(next_path, status_code=303, headers=CLEAR_SITE_DATA)

    def _sign_in_refusal(self, request, wants_json: bool, message: str, next_path: str, name: str, status: int):
        if wants_json:
            return JSONResponse({"error": message}, status_code=status)
        return HTMLResponse(pages.sign_in_form(csrf_token(request), next_path, self.site.prefix, message, name), status)

    async def sign_out(self, request: Request, principal: Principal) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        if csrf_ok(request, form):
            await run_in_threadpool(self.site.accounts.end_session, request.scope["session"].get("sid", ""))
            await run_in_threadpool(self.site.audit.record, "sign-out", "allowed", request.scope, principal)
            request.scope["session"].clear()
        else:
            await run_in_threadpool(self.site.audit.record, "sign-out", "denied", request.scope, principal,
                                    detail="bad or missing CSRF token: still signed in")  # fmt: skip
        return RedirectResponse(f"{self.site.prefix}/auth/sign-in", status_code=303, headers=CLEAR_SITE_DATA)

    async def home(self, request: Request, principal: Principal) -> Response:
        def table() -> str:
            names = self.site.known_projects()
            mine = names if principal.platform_admin else [p for p in names if principal.role_on(p) is not None]
            found = [standing_of(self.site.targets.instance, p, principal.describe_role(p)) for p in mine]
            return standings_table(found, self.site.prefix)

        projects_table = await run_in_threadpool(table)
        return HTMLResponse(pages.home(principal, self.site.prefix, csrf_token(request), projects_table))

    async def audit_page(self, request: Request, principal: Principal) -> Response:
        """Platform admins read all of it; a project's admins read that project's entries."""
        projects = None if principal.platform_admin else {p for p, r in principal.roles.items() if r >= Role.admin}
        if projects is not None and not projects:
            await run_in_threadpool(self.site.audit.record, "audit-page", "denied", request.scope, principal,
                                    detail="the audit log is for admins")  # fmt: skip
            refusal = "<p class='error'>the audit log is for admins</p>"
            return HTMLResponse(
                pages.page("Refused", refusal, self.site.prefix, pages.nav(self.site.prefix, csrf_token(request))), 403
            )
        query = request.query_params
        entries = await run_in_threadpool(
            lambda: list(
                self.site.accounts.entries(
                    user=query.get("user"), project=query.get("project"), projects=projects, limit=1000
                )
            )
        )
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse([e.as_dict() for e in entries])
        return HTMLResponse(pages.audit_table(entries, self.site.prefix, csrf_token(request)))


def _safe_next(path: str | None, prefix: str) -> str:
    """Only a path on this server: never an absolute or scheme-relative URL (open redirect)."""
    # Browsers read "/\\host" as "//host": a backslash anywhere is refused too.
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path or urlsplit(path).netloc:
        return prefix + "/"
    return path
