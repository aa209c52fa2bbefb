"""`/platform/models/<project>`: every candidate of each of a project's tasks, retrain by retrain.

For each task: the candidate's metric on its held-out split beside the serving champion's and the
baseline's, as a chart over the retrains and as a table with each candidate's version, family and
source, whether it was promoted or why it was refused, and a link to its MLflow run (training
curves, the report). Read from the materializations in the Dagster instance: the model, evaluation
and champion assets of the same run describe one candidate; nothing else is asked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

import dagster as dg

from algo_platform.core.project import NEXT_ITEM_TASK, Project
from algo_platform.web.charts import Chart
from algo_platform.web.csrf import csrf_token

MODELS = "/platform/models"
RETRAINS = 200  # the latest retrains shown per task


@dataclass(frozen=True)
class TaskAssets:
    task: str
    model: str
    evaluation: str
    champion: str
    metric: str  # the evaluation's metadata key of the candidate's primary metric, e.g. model_ndcg@10
    baseline: str  # the baseline's key on the same evaluation, e.g. popularity_ndcg@10

    @property
    def metric_name(self) -> str:
        return self.metric.removeprefix("model_")


def task_assets(project: Project) -> list[TaskAssets]:
    assets = [
        TaskAssets(
            NEXT_ITEM_TASK,
            "sequence_model",
            "evaluation_report",
            "champion_model",
            "model_ndcg@10",
            "popularity_ndcg@10",
        )  # fmt: skip
    ]
    for task in project.tasks:
        t = task.name
        assets.append(TaskAssets(t, f"{t}_model", f"{t}_evaluation", f"{t}_champion", "model_auc",
                                 f"{task.promotion.baseline}_auc"))  # fmt: skip
    return assets


@dataclass(frozen=True)
class Candidate:
    day: str  # the partition it was trained for
    when: dt.datetime  # when its champion decision was made
    version: str
    family: str
    source: str
    value: float | None  # its primary metric on the held-out split
    champion: float | None  # the serving champion's on the same split (None: no champion yet)
    baseline: float | None
    outcome: str  # promoted | kept
    why: str
    mlflow_run: str | None


def _value(metadata: dict, key: str):
    found = metadata.get(key)
    return getattr(found, "value", found)


def _by_run(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dg.EventLogEntry]:
    records = instance.fetch_materializations(key, limit=RETRAINS).records
    return {record.run_id: record.event_log_entry for record in records}


def candidates(instance: dg.DagsterInstance, project: str, assets: TaskAssets) -> list[Candidate]:
    """The task's candidates, oldest first: each champion decision with the model and the evaluation
    of the same run."""
    models = _by_run(instance, dg.AssetKey([project, assets.model]))
    evaluations = _by_run(instance, dg.AssetKey([project, assets.evaluation]))
    found = []
    for run_id, entry in _by_run(instance, dg.AssetKey([project, assets.champion])).items():
        if not run_id:  # reported through Dagster's REST API, not decided by a run: not a candidate
            continue
        decision = entry.asset_materialization.metadata
        model = models.get(run_id).asset_materialization.metadata if run_id in models else {}
        report = evaluations.get(run_id).asset_materialization.metadata if run_id in evaluations else {}
        champion_key = assets.metric.replace("model_", "champion_", 1)
        found.append(
            Candidate(
                day=entry.dagster_event.partition or "",
                when=dt.datetime.fromtimestamp(entry.timestamp, dt.UTC),
                version=str(_value(decision, "candidate_version") or "?"),
                family=str(_value(model, "family") or "unknown"),
                source=str(_value(model, "source") or _value(model, "trained_by") or "unknown"),
                value=_value(report, assets.metric),
                champion=_value(report, champion_key),
                baseline=_value(report, assets.baseline),
                outcome=str(_value(decision, "outcome") or "?"),
                why=str(_value(decision, "why") or ""),
                mlflow_run=web_link(_value(model, "mlflow_run")),
            )
        )
    return sorted(found, key=lambda c: c.when)


def web_link(url: object) -> str | None:
    """`url` when it is an http(s) address, else None: a page never links a `javascript:` or `data:`
    URL that a materialization's metadata could carry."""
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return url


def _figure(value: float | None) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def candidates_table(task: TaskAssets, found: list[Candidate]) -> str:
    rows = []
    for c in reversed(found):
        link = f"<a href='{escape(c.mlflow_run)}'>run</a>" if c.mlflow_run else ""
        why = escape(c.why.replace("- ", "").replace("\n", "; "))
        rows.append(
            f"<tr class='{escape(c.outcome)}'><td>{escape(c.day)}</td><td>v{escape(c.version)}</td>"
            f"<td>{escape(c.family)}</td><td>{escape(c.source)}</td><td>{_figure(c.value)}</td>"
            f"<td>{_figure(c.champion)}</td><td>{_figure(c.baseline)}</td><td>{escape(c.outcome)}</td>"
            f"<td>{why}</td><td>{link}</td></tr>"
        )
    header = (
        f"<tr><th>trained for</th><th>version</th><th>family</th><th>source</th><th>{escape(task.metric_name)}</th>"
        f"<th>champion</th><th>{escape(task.baseline.removesuffix('_' + task.metric_name))}</th><th>outcome</th>"
        "<th>why</th><th>MLflow</th></tr>"
    )
    return f"<div class='table-scroll'><table id='candidates-{escape(task.task)}'>{header}{''.join(rows)}</table></div>"


def candidates_chart(task: TaskAssets, found: list[Candidate]) -> Chart:
    """The candidate, the champion it met and the baseline, per retrain (its decision time)."""
    when = [c.when.isoformat() for c in found]
    traces = [
        {"type": "scatter", "mode": "markers", "name": "candidate", "x": when, "y": [c.value for c in found],
         "text": [f"v{c.version} {c.family}: {c.outcome}" for c in found]},
        {"type": "scatter", "mode": "lines", "line": {"shape": "hv"}, "name": "serving champion", "x": when,
         "y": [c.champion if c.champion is not None else (c.value if c.outcome == "promoted" else None)
               for c in found]},
        {"type": "scatter", "mode": "lines", "line": {"dash": "dot"}, "name": "baseline", "x": when,
         "y": [c.baseline for c in found]},
    ]  # fmt: skip
    return Chart(
        f"candidates-{task.task}-chart",
        f"{task.task}: {task.metric_name} per retrain",
        traces,
        {"yaxis": {"title": task.metric_name}},
        note="each candidate on its own held-out split; the champion's figure is on the same split",
    )


class ModelsPage:
    """The models pages, served by the sign-in middleware (`site`)."""

    def __init__(self, site):
        self.site = site

    def prefixed(self, method: str, path: str):
        if method == "GET" and path.startswith(MODELS + "/"):
            return lambda request, principal: self.project_page(request, principal, path.removeprefix(MODELS + "/"))
        return None

    async def project_page(self, request, principal, project: str):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        from algo_platform.core.project import ProjectError, load_project
        from algo_platform.web import pages
        from algo_platform.web.data_page import chart_section, chart_specs

        prefix = self.site.prefix
        header = pages.nav(prefix, csrf_token(request), MODELS)
        # The same answer for a project that does not exist: a name is no one's to probe.
        if principal.role_on(project) is None or project not in self.site.known_projects():
            message = f"you hold no role on a project named {project!r}; ask one of its admins for the viewer role"
            await run_in_threadpool(self.site.audit.record, "models-page", "denied", request.scope, principal,
                                    target=f"project {project[:64]}", detail="no role on the project")  # fmt: skip
            return HTMLResponse(pages.page("Refused", f"<p class='error'>{escape(message)}</p>", prefix, header), 403)
        try:
            declared = load_project(self.site.settings.projects_dir / project)
        except ProjectError:
            body = "<p class='error'>The project's file does not load; `algo-platform project list` says why.</p>"
            return HTMLResponse(pages.page(f"Models of {project}", body, prefix, header), 503)
        instance = self.site.targets.instance
        tasks = task_assets(declared)
        found = await run_in_threadpool(lambda: {t.task: candidates(instance, project, t) for t in tasks})
        sections, charts = [], {}
        for task in tasks:
            if not found[task.task]:
                sections.append(f"<section><h2>{escape(task.task)}</h2><p>No retrain has judged a candidate yet.</p>"
                                "</section>")  # fmt: skip
                continue
            charts[task.task] = [candidates_chart(task, found[task.task])]
            sections.append(chart_section(task.task, charts[task.task]) + candidates_table(task, found[task.task]))
        body = "".join(sections) + f"<script type='application/json' id='chart-specs'>{chart_specs(charts)}</script>"
        return HTMLResponse(
            pages.page(f"Models of {project}", body, prefix, header, scripts=("plotly.min.js", "charts.js"))
        )
