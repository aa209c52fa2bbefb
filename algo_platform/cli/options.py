"""What the commands share: the --project option, a project loaded by name, dates."""

from __future__ import annotations

import datetime as dt
import re

import click

from algo_platform.core.project import Project, ProjectError, project_names, projects_dir


def load_project_named(name: str) -> Project:
    """A project by name from <projects>/<name>/project.yaml, or a usage error listing the others."""
    from algo_platform.core.project import NAME_PATTERN, load_project

    if not re.fullmatch(NAME_PATTERN, name):
        raise click.UsageError(f"--project {name!r}: a project name is lower-case letters, digits and _")
    folder = projects_dir() / name
    if not folder.is_dir():
        known = project_names(projects_dir())
        raise click.UsageError(
            f"no project {name!r} in {projects_dir()}/ (known: {', '.join(known) or 'none'}); "
            f"create it with `algo-platform project new {name}`"
        )
    try:
        return load_project(folder)
    except ProjectError as error:
        raise click.UsageError(str(error)) from None


project_option = click.option(
    "--project", "project_name", required=True, help="The project (a folder in ./projects, or ALGO_PLATFORM_PROJECTS)."
)


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


fleet_option = click.option(
    "--fleet",
    "fleet_path",
    default=None,
    help="The fleet file (default: ALGO_PLATFORM_FLEET or deploy/gpu-fleet.yaml).",
)
