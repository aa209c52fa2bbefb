"""`/platform/gpus`: the GPU fleet for the signed-in user's projects.

The queues of the teams their projects train on (platform admins: every queue), with quota, use,
borrowing and the runs waiting, each with its wait so far; and the last 30 days of GPU-hours and
mean utilisation per project, as charts. Read from Kueue on a cluster and from the Dagster
instance without one (`pipeline.fleet_status`); nothing here is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from html import escape

import dagster as dg
import polars as pl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from algo_platform.accounts.principal import Principal
from algo_platform.core.fleet import FleetError, fleet_file, load_fleet
from algo_platform.core.project import ProjectError, load_project
from algo_platform.core.settings import load_settings
from algo_platform.resources.fleet_status import (
    QueueState,
    WaitingRun,
    cluster_queue_states,
    local_queue_states,
    usage_by_day,
)
from algo_platform.web import pages
from algo_platform.web.charts import Chart
from algo_platform.web.csrf import csrf_token
from algo_platform.web.data_page import chart_section, chart_specs

GPUS = "/platform/gpus"
DAYS = 30


def _wait(since: dt.datetime, now: dt.datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    return (
        f"{seconds // 3600} h {seconds % 3600 // 60} min"
        if seconds >= 3600
        else f"{seconds // 60} min {seconds % 60} s"
    )


def _waiting_run(run: WaitingRun, visible: Callable[[str | None], bool], now: dt.datetime, prefix: str) -> str:
    """A run of the viewer's projects links to its run page; another team member's shows only its wait."""
    waited = f"waiting {_wait(run.since, now)}"
    if not visible(run.project):
        return f"<li>a run of another project: {waited}</li>"
    link = f"<a href='{escape(prefix)}/runs/{escape(run.run_id)}'>{escape(run.run_id[:8])}</a>"
    return f"<li>{link} ({escape(run.project or '')}): {waited}</li>"


def queue_table(states: list[QueueState], now: dt.datetime, prefix: str, visible: Callable[[str | None], bool]) -> str:
    rows = []
    for state in states:
        waiting = "".join(
            _waiting_run(run, visible, now, prefix) for run in sorted(state.waiting, key=lambda r: r.since)
        )
        rows.append(
            f"<tr data-queue='{escape(state.name)}'><th scope='row'>{escape(state.name)}</th>"
            f"<td class='num quota'>{state.quota}</td><td class='num in-use'>{state.in_use:g}</td>"
            f"<td class='num borrowed'>{state.borrowed:g}</td><td class='num waiting'>{len(state.waiting)}</td>"
            f"<td><ul class='plain'>{waiting}</ul></td><td>{escape(', '.join(state.projects)) or '-'}</td></tr>"
        )
    unit = states[0].unit if states else "GPUs"
    return (
        f"<table id='queues'><caption>Team queues ({escape(unit)})</caption><thead><tr><th>Queue</th><th>Quota</th>"
        "<th>In use</th><th>Borrowed</th><th>Waiting</th><th>Waiting runs</th><th>Your projects</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def usage_charts(usage: pl.DataFrame, states: list[QueueState], today: dt.date) -> list[Chart]:
    days = [(today - dt.timedelta(days=offset)).isoformat() for offset in range(DAYS - 1, -1, -1)]
    hours, utilisation = [], []
    for project in sorted(usage.get_column("project").unique().to_list()):
        rows = {r["day"].isoformat(): r for r in usage.filter(pl.col("project") == project).iter_rows(named=True)}
        hours.append({"type": "bar", "name": escape(project), "x": days,
                      "y": [round(rows[d]["gpu_hours"], 4) if d in rows else 0 for d in days]})  # fmt: skip
        utilisation.append({"type": "scatter", "mode": "lines+markers", "name": escape(project), "x": days,
                            "y": [rows[d]["utilisation"] if d in rows else None for d in days]})  # fmt: skip
    queues = [state.name for state in states]
    return [
        Chart(
            "queue-use",
            "Quota and use per queue",
            [
                {"type": "bar", "name": "quota", "x": queues, "y": [s.quota for s in states]},
                {"type": "bar", "name": "in use", "x": queues, "y": [s.in_use for s in states]},
                {"type": "bar", "name": "borrowed", "x": queues, "y": [s.borrowed for s in states]},
            ],
            {"barmode": "group"},
        ),  # fmt: skip
        Chart(
            "gpu-hours",
            f"GPU-hours per day, last {DAYS} days",
            hours,
            {"barmode": "stack"},
            note="GPUs held × hours, from admission to the trainer's end, per training run",
        ),  # fmt: skip
        Chart(
            "gpu-utilisation",
            "Mean GPU utilisation per day (%)",
            utilisation,
            {"yaxis": {"range": [0, 100]}},
            note="NVML utilisation over the run, weighted by GPU-hours",
        ),  # fmt: skip
    ]


class GpuPage:
    def __init__(self, site):
        self.site = site

    def routes(self) -> dict:
        return {("GET", GPUS): self.page}

    def _projects(self, principal: Principal) -> dict[str, object]:
        projects = {}
        for name in self.site.known_projects():
            if principal.platform_admin or principal.role_on(name) is not None:
                try:
                    projects[name] = load_project(self.site.settings.projects_dir / name)
                except ProjectError:
                    continue  # its location fails to load and says why; the page shows the others
        return projects

    def gather(self, principal: Principal, now: dt.datetime) -> tuple[list[QueueState], pl.DataFrame, str]:
        projects = self._projects(principal)
        queues = {name: project.compute.queue for name, project in projects.items()}
        fleet = load_fleet()
        settings = load_settings()
        instance = self.site.targets.instance
        if settings.env == "kubernetes":
            import kubernetes

            try:
                kubernetes.config.load_incluster_config()
                states = cluster_queue_states(kubernetes.client.CustomObjectsApi(), kubernetes.client.CoreV1Api(),
                                              settings.k8s_namespace, fleet, queues)  # fmt: skip
            except Exception as error:  # no Kueue, no RBAC (deploy/k8s/training.yaml), API down
                reason = getattr(error, "reason", None) or type(error).__name__
                raise FleetError(f"cannot read the GPU queues from the cluster ({reason})") from None
        else:
            states = local_queue_states(instance, fleet, queues)
        if not principal.platform_admin:
            states = [state for state in states if state.projects]
        model_assets = {
            name: [dg.AssetKey([name, "sequence_model"]), *(dg.AssetKey([name, f"{t.name}_model"]) for t in p.tasks)]
            for name, p in projects.items()
        }
        return states, usage_by_day(instance, model_assets, DAYS, now), fleet_file().name  # no server paths

    async def page(self, request: Request, principal: Principal) -> Response:
        prefix = self.site.prefix
        header = pages.nav(prefix, csrf_token(request), GPUS)
        now = dt.datetime.now(dt.UTC)
        try:
            states, usage, source = await run_in_threadpool(self.gather, principal, now)
        except FleetError as error:
            body = f"<p class='error'>{escape(str(error))}</p>"
            return HTMLResponse(pages.page("GPUs", body, prefix, header), 503)
        if not states and usage.is_empty():
            body = "<p id='no-queues'>None of your projects trains on a team queue (compute.queue) yet.</p>"
            return HTMLResponse(pages.page("GPUs", body, prefix, header))
        charts = {"Use": usage_charts(usage, states, now.date())}
        body = (
            f"<p class='muted'>Quotas from {escape(source)}; as of {now:%Y-%m-%d %H:%M} UTC.</p>"
            f"{queue_table(states, now, prefix, lambda project: principal.role_on(project) is not None)}"
            + "".join(chart_section(name, group) for name, group in charts.items())
            + f"<script type='application/json' id='chart-specs'>{chart_specs(charts)}</script>"
        )
        return HTMLResponse(pages.page("GPUs", body, prefix, header, scripts=("plotly.min.js", "charts.js")))
