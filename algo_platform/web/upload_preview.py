"""The upload preview: what a staged file holds, shown before its uploader confirms or cancels it."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

import polars as pl

from algo_platform.engines.polars.preview import FilePreview, PreviewRefused
from algo_platform.ingest.staging import Staged
from algo_platform.profiles.overview import overview
from algo_platform.web import pages
from algo_platform.web.charts import Chart, file_charts
from algo_platform.web.data_page import chart_section, chart_specs


@dataclass
class PreviewOutcome:
    ok: bool
    summary: str  # one line: the audit log's detail, and the page's headline
    preview: FilePreview | None = None
    notes: tuple[str, ...] = ()
    charts: tuple[Chart, ...] = ()

    def as_json(self, staged: Staged) -> dict:
        answer = {"message": self.summary, "ok": self.ok, "sha256": staged.sha256}
        if self.ok and self.preview is not None:
            p = self.preview
            answer |= {
                "token": staged.token,
                "rows": p.rows,
                "rows_kept": p.rows_kept,
                "dropped": dict(p.dropped),
                "days": {day: p.rows_per_day[day] for day in p.days},
                "columns": dict(p.columns),
                "notes": list(self.notes),
            }
        return answer


def preview_staged(projects_dir: Path, staged: Staged, folder: Path) -> PreviewOutcome:
    """The upload's own checks (dry run) and the preview of the staged file."""
    from algo_platform.core.project import ProjectError, load_project
    from algo_platform.core.settings import load_settings
    from algo_platform.engines.polars.preview import preview_upload
    from algo_platform.ingest.upload import UploadError

    try:
        project = load_project(projects_dir / staged.project)
        result, preview = preview_upload(project, load_settings(), staged.path_in(folder), staged.day, staged.mapping)
    except (ProjectError, UploadError, PreviewRefused, ValueError) as error:
        return PreviewOutcome(False, str(error))
    notes = [n for n in (result.note,) if n]
    if result.ignored_columns:
        notes.append(f"column(s) {', '.join(result.ignored_columns)} are not loaded (not canonical or declared)")
    if result.already_present:
        notes.append("these bytes already landed for this day: confirming changes nothing")
    dropped = sum(preview.dropped.values())
    summary = (
        f"{preview.name}: {preview.rows:,} rows; cleaning would keep {preview.rows_kept:,} and drop {dropped:,} "
        f"({preview.dropped_share:.1%})"
    )
    profile = pl.from_arrow(preview.profile).with_columns(pl.lit(staged.day).alias("partition"))
    charts = tuple(file_charts(overview(profile))) if profile.height else ()
    return PreviewOutcome(True, summary, preview, tuple(notes), charts)


def _table(rows: list[tuple], head: tuple[str, ...], table_id: str) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table id='{table_id}'><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{cells}</table>"


def preview_page(outcome: PreviewOutcome, staged: Staged, prefix: str, csrf: str) -> str:
    header = pages.nav(prefix, csrf, "/platform/upload")
    if not outcome.ok or outcome.preview is None:
        body = (
            f"<p class='error' role='alert' id='result'>{escape(outcome.summary)}</p>"
            f"<p>Nothing was landed. <a href='{escape(prefix)}/platform/upload'>Upload another file</a></p>"
        )
        return pages.page("Upload refused", body, prefix, header)
    p = outcome.preview
    token = (
        f"<input type='hidden' name='csrf' value='{escape(csrf)}'>"
        f"<input type='hidden' name='token' value='{escape(staged.token)}'>"
    )
    actions = (
        f"<div class='toolbar'><form method='post' action='{escape(prefix)}/platform/upload/confirm'>{token}"
        f"<button type='submit' id='confirm' class='primary'>Land it in {escape(staged.project)} for "
        f"{escape(staged.day)}</button></form>"
        f"<form method='post' action='{escape(prefix)}/platform/upload/cancel'>{token}"
        "<button type='submit' id='cancel'>Cancel</button></form></div>"
    )
    facts = [
        ("file", f"{p.name} ({p.size:,} bytes)"),
        ("sha256", p.sha256),
        ("rows", f"{p.rows:,}"),
        (
            "days its rows cover",
            ", ".join(f"{d} ({p.rows_per_day[d]:,})" for d in p.days[:10]) + (" ..." if len(p.days) > 10 else ""),
        ),
        ("would keep", f"{p.rows_kept:,}"),
        ("would drop", f"{sum(p.dropped.values()):,} ({p.dropped_share:.1%})"),
    ]
    reasons = [(reason, f"{n:,}", f"{n / p.rows:.1%}") for reason, n in p.dropped.most_common()]
    drops = _table(reasons, ("reason", "rows", "share"), "drop-reasons") if reasons else "<p id='drop-reasons'>none</p>"
    notes = "".join(f"<li>{escape(n)}</li>" for n in outcome.notes)
    charts = {"What the file holds": list(outcome.charts)}
    body = (
        f"<p class='muted' id='result'>{escape(outcome.summary)}. Nothing has landed yet: the file waits in your "
        "staging area until you confirm.</p>"
        f"{actions}{_table(facts, ('', ''), 'preview-facts')}"
        f"<h2>Columns</h2>{_table(p.columns, ('in the file', 'becomes'), 'column-mapping')}"
        f"<h2>What cleaning would drop</h2>{drops}{f'<ul>{notes}</ul>' if notes else ''}"
        + (chart_section("What the file holds", list(outcome.charts)) if outcome.charts else "")
        + f"<script type='application/json' id='chart-specs'>{chart_specs(charts)}</script>"
    )
    return pages.page("Upload preview", body, prefix, header, scripts=("plotly.min.js", "charts.js"))
