"""`/platform/users`: admins manage users in the browser.

A project's admins grant and revoke roles on their projects (up to admin); platform admins also
add users, disable and enable them, on every project. Each change is audited like any other,
and takes effect on the user's open sessions at their next request.
"""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from algo_platform.accounts.principal import AccountError, Principal, Role
from algo_platform.web import pages
from algo_platform.web.csrf import csrf_ok, csrf_token

MIN_PASSWORD = 12


def administered(principal: Principal, projects: list[str]) -> list[str]:
    """The projects whose roles this principal may change."""
    return [p for p in projects if (principal.role_on(p) or 0) >= Role.admin]


def visible_users(listed: list[dict], principal: Principal, administered_projects: list[str]) -> list[dict]:
    """What this admin may see of each user: everything for a platform admin; for a project's admin,
    the names (to grant a role to) and the roles on the projects they administer, nothing of other
    projects and not who is a platform admin or disabled."""
    if principal.platform_admin:
        return listed
    mine = set(administered_projects)
    return [
        {"name": user["name"], "roles": {p: r for p, r in user["roles"].items() if p in mine},
         "platform_admin": False, "disabled": False}
        for user in listed
    ]  # fmt: skip


def users_page(listed: list[dict], projects: list[str], principal: Principal, prefix: str, csrf: str,
               message: str | None = None, ok: bool = True) -> str:  # fmt: skip
    notice = f"<p class='{'ok' if ok else 'error'}' role='status' id='result'>{escape(message)}</p>" if message else ""
    rows = "".join(
        f"<tr><td>{escape(u['name'])}</td><td>{escape(', '.join(f'{p}:{r}' for p, r in sorted(u['roles'].items())))}"
        f"</td><td>{'platform admin' if u['platform_admin'] else ''}</td><td>{'disabled' if u['disabled'] else ''}"
        "</td></tr>"
        for u in listed
    )
    names = "".join(f"<option>{escape(u['name'])}</option>" for u in listed)
    options = "".join(f"<option>{escape(p)}</option>" for p in projects)
    roles = "".join(f"<option>{r.name}</option>" for r in Role)
    token = f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    forms = f"""
<h2>Grant a role</h2>
<form class="stacked" method="post" action="{escape(prefix)}/platform/users/grant">{token}
  <label>User <select name="user" id="grant-user">{names}</select></label>
  <label>Project <select name="project" id="grant-project">{options}</select></label>
  <label>Role <select name="role" id="grant-role">{roles}</select></label>
  <button type="submit" id="grant">Grant</button></form>
<h2>Revoke a role</h2>
<form class="stacked" method="post" action="{escape(prefix)}/platform/users/revoke">{token}
  <label>User <select name="user">{names}</select></label>
  <label>Project <select name="project">{options}</select></label>
  <button type="submit" id="revoke">Revoke</button></form>"""
    if principal.platform_admin:
        forms += f"""
<h2>Add a user</h2>
<form class="stacked" method="post" action="{escape(prefix)}/platform/users/add">{token}
  <label>Name <input name="user" id="add-user" required></label>
  <label>Password (at least {MIN_PASSWORD} characters)
    <input name="password" id="add-password" type="password" required></label>
  <button type="submit" id="add">Add</button></form>
<h2>Disable or enable</h2>
<form class="stacked" method="post" action="{escape(prefix)}/platform/users/disable">{token}
  <label>User <select name="user">{names}</select></label>
  <label><input type="checkbox" name="disabled" value="1" checked> disabled</label>
  <button type="submit" id="disable">Apply</button></form>"""
    table = f"<table id='users'><tr><th>user</th><th>roles</th><th></th><th></th></tr>{rows}</table>"
    return pages.page("Users", f"{notice}{table}{forms}", prefix, pages.nav(prefix, csrf, "/platform/users"))


class UserAdmin:
    """The handlers; `signin.SignedIn` routes to them and supplies accounts, CSRF and auditing."""

    def __init__(self, signed_in):
        self.site = signed_in

    def routes(self) -> dict:
        return {
            ("GET", "/platform/users"): self.page,
            ("POST", "/platform/users/grant"): self.grant,
            ("POST", "/platform/users/revoke"): self.revoke,
            ("POST", "/platform/users/add"): self.add,
            ("POST", "/platform/users/disable"): self.disable,
        }

    def _projects(self, principal: Principal) -> list[str]:
        return administered(principal, self.site.known_projects())

    async def _render(self, request: Request, principal: Principal, message=None, ok=True, status=200) -> Response:
        if not principal.platform_admin and not self._projects(principal):
            await run_in_threadpool(self.site.audit.record, "users-page", "denied", request.scope, principal,
                                    detail="managing users is for admins")  # fmt: skip
            refusal = "<p class='error'>managing users is for admins</p>"
            header = pages.nav(self.site.prefix, csrf_token(request))
            return HTMLResponse(pages.page("Refused", refusal, self.site.prefix, header), 403)
        listed = visible_users(await run_in_threadpool(self.site.accounts.list_users), principal,
                               self._projects(principal))  # fmt: skip
        csrf = csrf_token(request)
        page = users_page(listed, self._projects(principal), principal, self.site.prefix, csrf, message, ok)
        return HTMLResponse(page, status)

    async def page(self, request: Request, principal: Principal) -> Response:
        return await self._render(request, principal)

    async def _change(self, request: Request, principal: Principal, action: str, change, done: str,
                      needs_platform_admin: bool = False) -> Response:  # fmt: skip
        """Checks the form's token and the principal's right, applies `change(form, user)`, audits it."""
        form = await request.form(max_files=0, max_fields=8)
        user = str(form.get("user", ""))
        project = str(form.get("project", "")) or None
        if not csrf_ok(request, form):
            await run_in_threadpool(self.site.audit.record, f"users.{action}", "denied", request.scope, principal,
                                    project=project, target=user, detail="bad or missing CSRF token")  # fmt: skip
            return await self._render(request, principal, "the form expired; reload the page", False, 400)
        if needs_platform_admin:
            allowed = principal.platform_admin
            reason = f"{action} needs a platform admin"
        else:
            allowed = project in self._projects(principal)
            reason = f"changing roles on {project} needs admin there; you are {principal.describe_role(project)}"
        if not allowed:
            await run_in_threadpool(self.site.audit.record, f"users.{action}", "denied", request.scope, principal,
                                    project=project, target=user, detail=reason)  # fmt: skip
            return await self._render(request, principal, reason, False, 403)
        try:
            detail = await run_in_threadpool(change, form, user)
        except AccountError as error:
            await run_in_threadpool(self.site.audit.record, f"users.{action}", "failed", request.scope, principal,
                                    project=project, target=user, detail=str(error))  # fmt: skip
            return await self._render(request, principal, str(error), False, 400)
        await run_in_threadpool(self.site.audit.record, f"users.{action}", "allowed", request.scope, principal,
                                project=project, target=user, detail=detail)  # fmt: skip
        return await self._render(request, principal, done.format(user=user, project=project, detail=detail))

    async def grant(self, request: Request, principal: Principal) -> Response:
        def change(form, user):
            name = str(form.get("role", ""))
            if name not in Role.__members__:
                raise AccountError(f"role {name!r}: choose {', '.join(Role.__members__)}")
            role = Role[name]
            self.site.accounts.grant(user, str(form.get("project", "")), role)
            return role.name

        return await self._change(request, principal, "grant", change, "{user} is {detail} on {project}")

    async def revoke(self, request: Request, principal: Principal) -> Response:
        def change(form, user):
            self.site.accounts.revoke(user, str(form.get("project", "")))
            return None

        return await self._change(request, principal, "revoke", change, "{user} has no role on {project}")

    async def add(self, request: Request, principal: Principal) -> Response:
        def change(form, user):
            password = str(form.get("password", ""))
            if len(password) < MIN_PASSWORD:
                raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
            self.site.accounts.add_user(user, password)
            return None

        return await self._change(request, principal, "add", change, "added {user}", needs_platform_admin=True)

    async def disable(self, request: Request, principal: Principal) -> Response:
        def change(form, user):
            disabled = form.get("disabled") == "1"
            self.site.accounts.set_disabled(user, disabled)
            return "disabled" if disabled else "enabled"

        return await self._change(request, principal, "disable", change, "{user} is {detail}",
                                  needs_platform_admin=True)  # fmt: skip
