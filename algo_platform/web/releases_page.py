"""`/platform/releases/<project>`: a project's grey releases (its next-item task's and each further
task's with a release: section), for anyone with a role on it; its admins
also pause, resume, advance and roll it back here (`POST /platform/releases/<project>/<action>`).

The page shows the release's state (stage, shares served, champion and challenger), the primary
metric per arm over the judged days with the effect's always-valid interval, and the stage history:
each day's decision and why. Everything comes from `assets.release_control`, which the CLI's
`algo-platform release ...` uses too; a change here is applied and audited as the report's own are.
"""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from algo_platform.accounts.principal import Role
from algo_platform.release.decisions import BY_HAND
from algo_platform.web import pages
from algo_platform.web.charts import Chart
from algo_platform.web.csrf import csrf_ok, csrf_token

RELEASES = "/platform/releases"


def metric_chart(view, metric: str, task: str = "next_item") -> Chart:
    """The primary metric per arm over the stage so far, each judged day."""
    days = [d.day for d in view.days]
    traces = [
        {"type": "scatter", "mode": "lines+markers", "name": f"champion v{view.champion_version or '-'}",
         "x": days, "y": [d.champion_mean for d in view.days]},
        {"type": "scatter", "mode": "lines+markers", "name": f"challenger v{view.state.challenger_version}",
         "x": days, "y": [d.challenger_mean for d in view.days],
         "text": [f"stage {d.stage_percent:g} %" for d in view.days]},
    ]  # fmt: skip
    return Chart(f"release-metric-{task}", f"{metric} per arm", traces, {"yaxis": {"title": metric}},
                 note="each day: the arm's users over the stage's days so far")  # fmt: skip


def effect_chart(view, task: str = "next_item") -> Chart:
    """The challenger's effect (challenger - champion) with its always-valid interval: a release is
    judged when the band leaves zero (harm below it; promotion needs its lower end above -margin)."""
    days = [d.day for d in view.days]
    traces = [
        {"type": "scatter", "mode": "lines", "line": {"width": 0}, "name": "interval high", "x": days,
         "y": [d.high for d in view.days], "showlegend": False},
        {"type": "scatter", "mode": "lines", "line": {"width": 0}, "fill": "tonexty", "name": "always-valid interval",
         "x": days, "y": [d.low for d in view.days]},
        {"type": "scatter", "mode": "lines+markers", "name": "effect", "x": days, "y": [d.effect for d in view.days]},
    ]  # fmt: skip
    layout = {"yaxis": {"title": "challenger - champion", "zeroline": True}}
    return Chart(f"release-effect-{task}", "effect and its interval", traces, layout,
                 note="the interval stays valid however often it is looked at (mixture SPRT)")  # fmt: skip


def history_table(view, task: str = "next_item") -> str:
    rows = "".join(
        f"<tr class='{escape(d.decision)}'><td>{escape(d.day)}</td><td>{d.stage_percent:g} %</td>"
        f"<td>{d.champion_mean:.4f} ({d.champion_users:,})</td>"
        f"<td>{d.challenger_mean:.4f} ({d.challenger_users:,})</td>"
        f"<td>{d.effect:+.4f} [{d.low:+.4f}, {d.high:+.4f}]</td><td>{escape(d.decision.replace('_', ' '))}</td>"
        f"<td>{escape(d.why.replace('- ', '').replace(chr(10), '; '))}</td></tr>"
        for d in reversed(view.days)
    )
    header = ("<tr><th>day</th><th>stage</th><th>champion (users)</th><th>challenger (users)</th>"
              "<th>effect [interval]</th><th>decision</th><th>why</th></tr>")  # fmt: skip
    return f"<div class='table-scroll'><table id='release-history-{escape(task)}'>{header}{rows}</table></div>"


def state_summary(view, task: str = "next_item") -> str:
    state = view.state
    stages = " → ".join(
        f"<b>{s:g} %</b>" if i == state.stage else f"{s:g} %" for i, s in enumerate(view.stages)
    )  # fmt: skip
    return (
        f"<p id='release-state-{escape(task)}'>Release <code>{escape(state.experiment)}</code> is "
        f"<b>{escape(state.status.replace('_', ' '))}</b>: challenger v{escape(state.challenger_version)} serves "
        f"{view.served_percent:g} % of users, champion v{escape(view.champion_version or '-')} the rest.</p>"
        f"<p>Stages: {stages} (this one since {escape(state.stage_since)}).</p>"
    )


def action_forms(prefix: str, project: str, csrf: str, task: str = "next_item") -> str:
    token = f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    buttons = "".join(
        f"<form method='post' action='{escape(prefix)}{RELEASES}/{escape(project)}/{action}'>{token}"
        f"<input type='hidden' name='task' value='{escape(task)}'><input type='hidden' name='reason' value=''>"
        f"<button type='submit' id='release-{escape(task)}-{action}'>{action.replace('_', ' ')}</button></form>"
        for action in BY_HAND
    )
    return f"<h3>Steer it (project admins)</h3><div class='actions'>{buttons}</div>"


class ReleasesPage:
    """The releases pages, served by the sign-in middleware (`site`)."""

    def __init__(self, site):
        self.site = site

    def prefixed(self, method: str, path: str):
        if not path.startswith(RELEASES + "/"):
            return None
        parts = path.removeprefix(RELEASES + "/").split("/")
        if method == "GET" and len(parts) == 1:
            return lambda request, principal: self.project_page(request, principal, parts[0])
        if method == "POST" and len(parts) == 2:
            return lambda request, principal: self.steer(request, principal, parts[0], parts[1])
        return None

    def _header(self, request: Request) -> str:
        return pages.nav(self.site.prefix, csrf_token(request), RELEASES)

    async def _refused(self, request, principal, project: str, action: str, why: str, status: int) -> Response:
        await run_in_threadpool(self.site.audit.record, action, "denied", request.scope, principal,
                                target=f"project {project[:64]}", project=project[:64], detail=why)  # fmt: skip
        body = f"<p class='error'>{escape(why)}</p>"
        return HTMLResponse(pages.page("Refused", body, self.site.prefix, self._header(request)), status)

    def _project(self, principal, project: str):
        """The declared project, or why this principal may not see it (the same answer whether or not
        it exists: a name is no one's to probe)."""
        from algo_platform.core.project import ProjectError, load_project

        if principal.role_on(project) is None or project not in self.site.known_projects():
            return None, f"you hold no role on a project named {project!r}; ask one of its admins for the viewer role"
        try:
            return load_project(self.site.settings.projects_dir / project), None
        except ProjectError:
            return None, "the project's file does not load; `algo-platform project list` says why"

    async def project_page(self, request: Request, principal, project: str, message: str = "", ok: bool = True,
                           status: int = 200) -> Response:  # fmt: skip
        from algo_platform.assets.release_control import released_tasks, view
        from algo_platform.web.data_page import chart_specs

        declared, why = self._project(principal, project)
        if declared is None:
            return await self._refused(request, principal, project, "releases-page", why, 403)
        prefix, title = self.site.prefix, f"Grey releases of {project}"
        notice = ""
        if message:
            notice = f"<p class='{'ok' if ok else 'error'}' role='status' id='result'>{escape(message)}</p>"
        tasks = released_tasks(declared)
        if not tasks:
            body = f"{notice}<p>This project has no release: section in project.yaml; docs/grey-release.md.</p>"
            return HTMLResponse(pages.page(title, body, prefix, self._header(request)), status)
        admin = (principal.role_on(project) or 0) >= Role.admin
        shown = await run_in_threadpool(
            lambda: {task: view(self.site.targets.instance, self.site.settings, declared, task) for task in tasks}
        )
        sections, charts = [], {}
        for task, release_view in shown.items():
            sections.append(self._section(declared, task, release_view, charts, admin, request))
        body = notice + "".join(sections)
        body += f"<script type='application/json' id='chart-specs'>{chart_specs(charts)}</script>"
        scripts = ("plotly.min.js", "charts.js")
        return HTMLResponse(pages.page(title, body, prefix, self._header(request), scripts=scripts), status)

    def _section(self, declared, task: str, shown, charts: dict, admin: bool, request: Request) -> str:
        from algo_platform.assets.release_control import released_task
        from algo_platform.web.data_page import chart_section

        if shown.state is None:
            champion = escape(shown.champion_version or "-")
            idle = f"<p>No grey release yet: champion v{champion} serves everyone.</p>"
            return f"<section><h2>{escape(task)}</h2>{idle}</section>"
        metric = released_task(declared, task)[1].primary_metric
        html = f"<section><h2>{escape(task)}</h2>" + state_summary(shown, task)
        if shown.days:
            charts[task] = [metric_chart(shown, metric, task), effect_chart(shown, task)]
            html += chart_section("Feedback per arm", charts[task])
        else:
            html += "<p>No day judged yet.</p>"
        html += "<h3>Stage history</h3>" + history_table(shown, task)
        if admin:
            html += action_forms(self.site.prefix, declared.name, csrf_token(request), task)
        return html + "</section>"

    async def steer(self, request: Request, principal, project: str, action: str) -> Response:
        from algo_platform.assets.release_control import act
        from algo_platform.release.decisions import ReleaseActionError

        audit_action = f"release.{action if action in BY_HAND else 'unknown'}"
        form = await request.form(max_files=0, max_fields=4)
        if not csrf_ok(request, form):
            return await self._refused(request, principal, project, audit_action, "the form expired; reload the page",
                                       400)  # fmt: skip
        declared, why = self._project(principal, project)
        if declared is None:
            return await self._refused(request, principal, project, audit_action, why, 403)
        if (principal.role_on(project) or 0) < Role.admin:
            why = f"steering a release of {project} needs admin there; you are {principal.describe_role(project)}"
            return await self._refused(request, principal, project, audit_action, why, 403)
        if action not in BY_HAND:
            why = f"unknown action {action[:32]!r}: choose {', '.join(BY_HAND)}"
            return await self._refused(request, principal, project, audit_action, why, 404)
        reason = str(form.get("reason", ""))[:500]
        task = str(form.get("task", "next_item"))[:64]
        role = principal.describe_role(project)
        try:
            client = self.site.identities.client(request.scope)
            decision = await run_in_threadpool(act, self.site.targets.instance, self.site.settings, declared, action,
                                               principal.name, role, client, reason, task)  # fmt: skip
        except ReleaseActionError as error:
            await run_in_threadpool(self.site.audit.record, audit_action, "failed", request.scope, principal,
                                    project=project, target=f"project {project}", detail=str(error))  # fmt: skip
            return await self.project_page(request, principal, project, str(error), False, 409)
        except Exception as error:  # the registry unreachable, say: recorded, and said without a trace
            await run_in_threadpool(self.site.audit.record, audit_action, "failed", request.scope, principal,
                                    project=project, target=f"project {project}", detail=repr(error)[:500])  # fmt: skip
            message = "the release could not be changed (the model registry did not answer); try again"
            return await self.project_page(request, principal, project, message, False, 503)
        done = f"{decision.action.replace('_', ' ')}: now {decision.state.status.replace('_', ' ')}"
        return await self.project_page(request, principal, project, done)
