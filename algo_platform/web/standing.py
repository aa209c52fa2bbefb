"""Where each of a user's projects stands, for the home page: the last ingest, the last retrain and
the champion it serves, read from the materializations in the Dagster instance (nothing else is
asked: no MLflow call, no file read)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

import dagster as dg

from algo_platform.web.models_page import MODELS
from algo_platform.web.releases_page import RELEASES


@dataclass(frozen=True)
class Standing:
    project: str
    role: str
    last_ingest: str  # "<partition>, <when>", or "never"
    last_retrain: str
    champion: str  # "<registered model> v<N> (<family>)", or "none yet"
    release: str = "none"  # the last grey release's state as its last report left it


def _latest(instance: dg.DagsterInstance, project: str, asset: str):
    return instance.get_latest_materialization_event(dg.AssetKey([project, asset]))


def _when(entry) -> str:
    if entry is None:
        return "never"
    moment = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{entry.dagster_event.partition or 'unpartitioned'}, at {moment}"


def standing_of(instance: dg.DagsterInstance, project: str, role: str) -> Standing:
    champion = _latest(instance, project, "champion_model")
    served = "none yet"
    if champion is not None:
        metadata = champion.asset_materialization.metadata
        version = getattr(metadata.get("champion_version"), "value", None)
        family = getattr(metadata.get("champion_family"), "value", None)
        outcome = getattr(metadata.get("outcome"), "value", "")
        served = f"{version}" + (f" ({family})" if family else "") + (f"; last candidate {outcome}" if outcome else "")
    release = "none"
    # The last report that judged a release (a paused release's later days judge nothing).
    for record in instance.fetch_materializations(dg.AssetKey([project, "release_report"]), limit=30).records:
        metadata = record.event_log_entry.asset_materialization.metadata
        status = getattr(metadata.get("status"), "value", None)
        if status is not None:
            share = {"running": getattr(metadata.get("next_stage_percent"), "value", "?"), "promoted": 100}.get(
                status, 0
            )
            release = (
                f"{getattr(metadata.get('experiment'), 'value', '?')}: {status.replace('_', ' ')}, {share} % served"
            )
            break
    ingested = _when(_latest(instance, project, "cleaned_events"))
    return Standing(project, role, ingested, _when(champion), served, release)


def standings_table(standings: list[Standing], prefix: str) -> str:
    if not standings:
        return "<p>You hold a role on no project yet; ask a project's admin for one.</p>"
    rows = "".join(
        f"<tr><td><a href='{escape(prefix)}/platform/data/{escape(s.project)}'>{escape(s.project)}</a></td>"
        f"<td>{escape(s.role)}</td><td>{escape(s.last_ingest)}</td><td>{escape(s.last_retrain)}</td>"
        f"<td><a href='{escape(prefix)}{MODELS}/{escape(s.project)}'>{escape(s.champion)}</a></td>"
        f"<td><a href='{escape(prefix)}{RELEASES}/{escape(s.project)}'>{escape(s.release)}</a></td></tr>"
        for s in standings
    )
    header = "<tr><th>project</th><th>your role</th><th>last ingest</th><th>last retrain</th><th>serving</th>"
    header += "<th>grey release</th></tr>"
    return f"<div class='table-scroll'><table id='projects'>{header}{rows}</table></div>"
