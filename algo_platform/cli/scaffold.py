"""`algo-platform project new` and `project list`: a project is a folder and a workspace entry."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from algo_platform.core.atomic import write_atomically
from algo_platform.core.project import NAME_PATTERN, PROJECT_FILE, ProjectError, load_project, parse_project

DEFINITIONS_FILE = "definitions.py"
DEFINITIONS_PY = '''"""Code location of this project: everything is declared in project.yaml beside this file.

Add the team's own assets here if it needs any (they load in the same code location)."""

from algo_platform.definitions import load_project_definitions

defs = load_project_definitions(__file__)
'''
PROJECT_TEMPLATE = """# The {name} team's pipeline: every field is checked when the code location loads.
# Schema and allowed values: algo_platform/core/project.py (docs/projects.md).
name: {name}
owners: {owners}
description: ""
partitions_start: {start}       # first day of events (YYYY-MM-DD)
data:
  column_map: {{}}               # canonical column -> your column, e.g. {{user_id: userId}}
  interaction_types: [play, like, share, comment, follow]
  partition: {partition}{pad}# day | week | month: years of a sparse log are hundreds of months
  days_per_run: auto            # partitions per ingest run in a backfill: auto (from an import's sizes) or a number
training:
  window_days: 7                # days per training run (the last one held out), or all: every day so far
  evaluation: next_day
model:
  family: hstu                  # hstu (the generative recommender's transducer: the best family on
                                # MovieLens-100K) | sasrec | gru4rec | itemknn | ease |
                                # models.py:YourClass (this folder) | an entry point
  epochs: 60                    # most epochs; training stops when validation NDCG stops improving:
  patience: 10                  # ... for this many epochs (real logs' validation is noisy: 3 stops too soon)
  blend_with: itemknn           # also rank by item-kNN, hstu's share chosen on validation ("": hstu alone)
                                # any trainer flag: python -m algo_platform.training --help
schedule:
  cron: "0 2 * * *"
  timezone: UTC
  enabled: false
sensor:
  enabled: false                # ingest new landing-zone files automatically
promotion:
  margin: 0.01
  segment_tolerance: 0.05
compute:
  pool: gpu
  gpus: 1
  priority: 0                   # dagster/priority of the project's runs
"""


class ScaffoldError(ValueError):
    pass


@dataclass
class Created:
    folder: Path
    project_file: Path


def _workspace_entries(workspace: Path) -> list[dict]:
    if not workspace.exists():
        return []
    document = yaml.safe_load(workspace.read_text()) or {}
    return list(document.get("load_from") or [])


def add_to_workspace(workspace: Path, name: str, definitions: Path) -> None:
    entries = _workspace_entries(workspace)
    if any((entry.get("python_file") or {}).get("location_name") == name for entry in entries):
        return
    relative = definitions.resolve().relative_to(workspace.resolve().parent)
    text = workspace.read_text() if workspace.exists() else ""
    if entries and re.search(r"^load_from:", text, re.MULTILINE):
        # Appended in the file's own indentation: the other entries (and comments) stay as written.
        found = re.search(r"^( *)- ", text, re.MULTILINE)
        indent = found.group(1) if found else "  "
        entry = f"{indent}- python_file:\n{indent}    relative_path: {relative}\n{indent}    location_name: {name}\n"
        write_atomically(workspace, (text.rstrip("\n") + "\n" + entry).encode())
        return
    entries.append({"python_file": {"relative_path": str(relative), "location_name": name}})
    header = "# One code location per project (`algo-platform project new NAME` adds its entry).\n"
    body = yaml.safe_dump({"load_from": entries}, sort_keys=False)
    write_atomically(workspace, (header + body).encode())


def scaffold_project(
    projects: Path,
    name: str,
    owners: list[str],
    partitions_start: str | None,
    workspace: Path,
    partition: str = "day",
) -> Created:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ScaffoldError(f"{name!r}: a project name is lower-case letters, digits and _, 2-31 characters")
    folder = projects / name
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists; edit {folder / PROJECT_FILE} instead")
    start = partitions_start or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)).isoformat()
    owners_text = "[" + ", ".join(owners or [f"team:{name}"]) + "]"
    pad = " " * max(1, 19 - len(partition))  # the comments stay in one column
    text = PROJECT_TEMPLATE.format(name=name, owners=owners_text, start=start, partition=partition, pad=pad)
    parse_project(yaml.safe_load(text), f"{folder / PROJECT_FILE}")  # refuse bad owners or dates before writing
    folder.mkdir(parents=True)
    write_atomically(folder / PROJECT_FILE, text.encode())
    write_atomically(folder / DEFINITIONS_FILE, DEFINITIONS_PY.encode())
    add_to_workspace(workspace, name, folder / DEFINITIONS_FILE)
    return Created(folder, folder / PROJECT_FILE)


@dataclass
class ProjectStatus:
    name: str
    location: str
    status: str
    owners: list[str] = field(default_factory=list)
    problem: str = ""


def project_statuses(projects: Path, workspace: Path) -> list[ProjectStatus]:
    """Each project folder with its workspace entry and whether its project.yaml is valid."""
    locations = {
        Path((entry.get("python_file") or {}).get("relative_path", "")).parent.name: entry["python_file"].get(
            "location_name", ""
        )
        for entry in _workspace_entries(workspace)
        if "python_file" in entry
    }
    rows = []
    for folder in sorted(p for p in projects.glob("*") if p.is_dir()):
        location = locations.get(folder.name, "(not in workspace.yaml)")
        try:
            project = load_project(folder)
        except ProjectError as error:
            rows.append(ProjectStatus(folder.name, location, "broken", problem=str(error)))
            continue
        try:
            from algo_platform.definitions import build_project_definitions

            build_project_definitions(project).resolve_asset_graph()
        except Exception as error:  # whatever stops the code location from loading is worth showing
            rows.append(
                ProjectStatus(project.name, location, "broken", project.owners, f"{type(error).__name__}: {error}")
            )
            continue
        rows.append(ProjectStatus(project.name, location, "ok", project.owners))
    return rows
