"""`/platform/data/<project>`: a project's data at a glance, for the users who hold a role on it.

The page reads the project's profile rollup (algo_platform.profiles), refreshed when partitions
were stored since, and the latest outcome of each ingest check per partition (one query of the
instance's check index); never events. The figures of a rollup are computed once and kept in
memory until the rollup changes. `?day=YYYY-MM-DD` shows one day, with links to its partition in
the Dagster UI. The static files (stylesheet, plotly.js, the chart script) are served from here too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from html import escape
from importlib import resources
from pathlib import Path

import polars as pl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from algo_platform.accounts.principal import Principal
from algo_platform.core.settings import load_settings
from algo_platform.profiles.overview import Overview, overview
from algo_platform.profiles.rollup import ProfileStore, Rollup
from algo_platform.web import pages
from algo_platform.web.charts import Chart, day_charts, history_charts
from algo_platform.web.csrf import csrf_token

DATA = "/platform/data"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# The days the page shows: real dates whose neighbours (the previous and next day links) are dates too.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)


def _shown_day(day: str) -> bool:
    if not _DAY.fullmatch(day):
        return False
    try:
        return FIRST_DAY <= dt.date.fromisoformat(day) <= LAST_DAY
    except ValueError:
        return False


# The checks of the ingest whose outcomes the page shows: (asset, check).
INGEST_CHECKS = (
    ("raw_events", "quality_score_above_threshold"),
    ("raw_events", "raw_events_suite"),
    ("raw_events", "no_files_quarantined"),
    ("cleaned_events", "cleaned_events_suite"),
    ("cleaned_events", "distribution_drift"),
)
STATIC_FILES = {"platform.css": "text/css", "charts.js": "text/javascript"}


def plotly_bundle() -> Path:
    """plotly.js as the `plotly` package ships it: served by the platform, never from a CDN."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def static_file(name: str) -> Response | None:
    if name == "plotly.min.js":
        return FileResponse(plotly_bundle(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
    if name in STATIC_FILES:
        path = Path(str(resources.files("algo_platform.web") / "static" / name))
        return FileResponse(path, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=3600"})
    return None


def chart_section(title: str, charts: list[Chart], extra: dict[str, str] | None = None) -> str:
    figures = "".join(
        f"<figure class='chart-card'><figcaption><span>{escape(c.title)}</span>"
        f"<button type='button' class='csv' title='the numbers as CSV'>CSV</button></figcaption>"
        f"<div class='chart' id='{escape(c.id)}' role='img' aria-label='{escape(c.title)}'></div>"
        f"{f'<p class=note>{escape(c.note)}</p>' if c.note else ''}{(extra or {}).get(c.id, '')}</figure>"
        for c in charts
    )
    return f"<section><h2>{escape(title)}</h2><div class='charts'>{figures}</div></section>"


def chart_specs(sections: dict[str, list[Chart]]) -> str:
    """The specifications as JSON safe inside a <script> element."""
    specs = [chart.spec() for charts in sections.values() for chart in charts]
    return json.dumps(specs, separators=(",", ":")).replace("<", "\\u003c")


def totals_cards(overview_: Overview) -> str:
    t = overview_.totals
    kept = t["events"] / t["rows_in"] if t["rows_in"] else 1.0
    cards = [
        ("days with events", f"{overview_.days:,}"),
        ("events kept", f"{t['events']:,.0f}"),
        ("rows dropped", f"{t['dropped']:,.0f} ({1 - kept:.1%})"),
        ("users", f"{t['users']:,.0f}"),
        ("items", f"{t['items']:,.0f}"),
        ("files quarantined", f"{t['files_quarantined']:,.0f}"),
    ]
    return (
        "<div class='cards'>"
        + "".join(
            f"<div class='card'><span class='muted'>{escape(name)}</span><b>{escape(value)}</b></div>"
            for name, value in cards
        )
        + "</div>"
    )


class DataPage:
    """The data pages and the static files, served by the sign-in middleware (`site`)."""

    def __init__(self, site):
        self.site = site
        self._cache: dict[tuple, tuple[Overview, pl.DataFrame | None]] = {}
        self._rollups: dict[str, Rollup] = {}  # per project, as last refreshed here
        self._lock = threading.Lock()

    def routes(self) -> dict:
        return {("GET", DATA): self.index}

    def prefixed(self, method: str, path: str):
        """The handler of a path with a name in it, /platform/data/<project> (the sign-in middleware
        serves /platform/static/<file> itself, before anyone signs in)."""
        if method != "GET":
            return None
        if path.startswith(DATA + "/"):
            return lambda request, principal: self.project_page(request, principal, path.removeprefix(DATA + "/"))
        return None

    def _viewable(self, principal: Principal) -> list[str]:
        return [p for p in self.site.known_projects() if principal.role_on(p) is not None]

    async def index(self, request: Request, principal: Principal) -> Response:
        prefix = self.site.prefix
        projects = self._viewable(principal)
        items = "".join(f"<li><a href='{escape(prefix)}{DATA}/{escape(p)}'>{escape(p)}</a></li>" for p in projects)
        body = f"<ul id='projects'>{items}</ul>" if projects else "<p>You hold a role on no project yet.</p>"
        header = pages.nav(prefix, csrf_token(request), DATA)
        return HTMLResponse(pages.page("Data", body, prefix, header))

    async def project_page(self, request: Request, principal: Principal, project: str) -> Response:
        prefix = self.site.prefix
        header = pages.nav(prefix, csrf_token(request), DATA)
        # The same answer for a project that does not exist: a name is no one's to probe.
        if principal.role_on(project) is None or project not in self.site.known_projects():
            message = f"you hold no role on a project named {project!r}; ask one of its admins for the viewer role"
            await run_in_threadpool(self.site.audit.record, "data-page", "denied", request.scope, principal,
                                    target=f"project {project[:64]}", detail="no role on the project")  # fmt: skip
            return HTMLResponse(pages.page("Refused", f"<p class='error'>{escape(message)}</p>", prefix, header), 403)
        day = request.query_params.get("day")
        if day is not None and not _shown_day(day):
            message = f"day must be a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}"
            await run_in_threadpool(self.site.audit.record, "data-page", "denied", request.scope, principal,
                                    project=project, target=f"day {day[:20]}", detail=message)  # fmt: skip
            return HTMLResponse(pages.page("Refused", f"<p class='error'>{message}</p>", prefix, header), 400)
        figures, checks = await run_in_threadpool(self.figures, project, day)
        return HTMLResponse(self.render(project, day, figures, checks, prefix, header))

    def figures(self, project: str, day: str | None) -> tuple[Overview, pl.DataFrame | None]:
        """The rollup's figures (cached until it changes) and the check outcomes."""
        store = ProfileStore(load_settings().layout.project(project))
        rollup = self._rollups[project] = store.refresh(self._rollups.get(project))
        key = (project, day, hash(frozenset(rollup.stamps.items())))
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            figures = overview(rollup.table, day)
            checks = self.check_outcomes(project, rollup.partitions) if day is None else None
            cached = (figures, checks)
            with self._lock:
                self._cache = {k: v for k, v in self._cache.items() if k[0] != project or k[1] != day}
                self._cache[key] = cached
        return cached

    def check_outcomes(self, project: str, partitions: list[str]) -> pl.DataFrame | None:
        """day × check: 1 passed, 0 failed (the latest evaluation of each partition), from one query."""
        instance = getattr(self.site.targets, "instance", None)
        if instance is None or not partitions:
            return None
        import dagster as dg

        keys = [dg.AssetCheckKey(dg.AssetKey([project, asset]), check) for asset, check in INGEST_CHECKS]
        infos = instance.event_log_storage.get_asset_check_partition_info(keys)
        outcome = {"SUCCEEDED": 1.0, "FAILED": 0.0}  # PLANNED, SKIPPED: not run (blank)
        rows = [
            {
                "day": info.partition_key,
                "check": info.check_key.name,
                "passed": outcome.get(info.latest_execution_status.value),
            }
            for info in infos
            if info.partition_key is not None
        ]
        if not rows:
            return None
        frame = pl.DataFrame(rows, schema={"day": pl.String, "check": pl.String, "passed": pl.Float64})
        wide = frame.pivot(on="check", index="day", values="passed", aggregate_function="last")
        return wide.with_columns(pl.col("day").str.to_date()).sort("day")

    def render(self, project: str, day: str | None, figures: Overview, checks, prefix: str, header: str) -> str:
        base = f"{escape(prefix)}{DATA}/{escape(project)}"
        picker = (
            f"<form method='get' action='{base}'><label>Day <input type='date' name='day' id='day' "
            f"value='{escape(day or figures.last_day or '')}'></label>"
            "<button type='submit'>Show the day</button></form>"
        )
        if figures.days == 0 and day is None:
            body = (
                "<p id='no-data'>No profiles yet: the data page fills in as partitions are ingested "
                f"({escape(project)}_ingest_job, or a backfill).</p>"
            )
            return pages.page(f"Data: {project}", body, prefix, header)
        if day is None:
            sections = history_charts(figures, checks)
            title = f"Data: {project}"
            lead = (f"<p class='muted'>{figures.first_day} .. {figures.last_day}; click a day in the first chart "
                    "for that day's view.</p>")  # fmt: skip
        else:
            sections = day_charts(figures)
            title = f"Data: {project} on {day}"
            lead = self._day_links(project, day, base, prefix)
        extra = {"quarantined": self._quarantine_table(project, figures, prefix)}
        body = (
            f"{lead}<div class='toolbar'>{picker}"
            f"{f'<a href={base}>the whole history</a>' if day else ''}</div>{totals_cards(figures)}"
            + "".join(chart_section(name, charts, extra) for name, charts in sections.items())
            + f"<script type='application/json' id='chart-specs'>{chart_specs(sections)}</script>"
        )
        html = pages.page(title, body, prefix, header, scripts=("plotly.min.js", "charts.js"))
        return html.replace("<body>", f"<body data-day-link='{base}?day='>", 1)

    def _day_links(self, project: str, day: str, base: str, prefix: str) -> str:
        from algo_platform.core.project import load_project

        try:
            partition = load_project(self.site.settings.projects_dir / project).calendar.period_of(day).key
        except (ValueError, OSError):
            partition = day
        links = " · ".join(
            f"<a href='{escape(prefix)}/assets/{escape(project)}/{asset}?view=partitions&amp;partition={partition}'>"
            f"{asset}</a>"
            for asset in ("raw_events", "cleaned_events", "data_profile")
        )
        previous = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
        following = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        return (
            f"<p class='muted' id='partition-links'>Partition {partition} in the Dagster UI: {links}. "
            f"<a href='{base}?day={previous}'>previous day</a> · <a href='{base}?day={following}'>next day</a></p>"
        )

    def _quarantine_table(self, project: str, figures: Overview, prefix: str) -> str:
        rows = figures.quarantined.tail(200)
        if rows.is_empty():
            return "<p class='note'>No file quarantined.</p>"
        body = "".join(
            f"<tr><td><a href='{escape(prefix)}{DATA}/{escape(project)}?day={day}'>{day}</a></td>"
            f"<td>{escape(file)}</td><td>{escape(reason or '')}</td></tr>"
            for day, file, reason in rows.iter_rows()
        )
        return (
            f"<div class='table-scroll'><table id='quarantined-files'><tr><th>day</th><th>file</th><th>reason</th></tr>"
            f"{body}</table></div>"
        )
