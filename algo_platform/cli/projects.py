"""`algo-platform project new|list`: one folder per team under ./projects, each a code location."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from algo_platform.core.project import ProjectError, projects_dir


@click.group()
def project() -> None:
    """Projects: one folder per team under ./projects, each a code location."""


@project.command("new")
@click.argument("name")
@click.option("--owner", "owners", multiple=True, help="E-mail or team:<name> (repeatable; default team:<name>).")
@click.option("--partitions-start", default=None, help="First day of the team's data (default: 30 days ago).")
@click.option(
    "--partition",
    type=click.Choice(["day", "week", "month"]),
    default="day",
    show_default=True,
    help="Partition grain: day for busy logs; week or month for years of a sparse log.",
)
@click.option("--workspace", default="workspace.yaml", show_default=True)
def project_new(
    name: str, owners: tuple[str, ...], partitions_start: str | None, partition: str, workspace: str
) -> None:
    """Create projects/NAME/ (project.yaml + its code location) and add it to workspace.yaml."""
    from algo_platform.cli.scaffold import ScaffoldError, scaffold_project

    try:
        created = scaffold_project(projects_dir(), name, list(owners), partitions_start, Path(workspace), partition)
    except (ScaffoldError, ProjectError) as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"created {created.folder}/ and added code location {name!r} to {workspace}")
    click.echo(f"next: edit {created.project_file} (owners, data, model, schedule, compute), then")
    click.echo(f"  algo-platform import HISTORY.csv --project {name} --map user_id=...   # a history file, any span")
    click.echo(f"  algo-platform backfill --project {name} --from FIRST --to LAST --wait  # ingest it (daemon)")
    click.echo(f"  algo-platform retrain --project {name} --wait                         # train, evaluate, serve")
    click.echo(f"  (one day's file instead: algo-platform upload FILE --project {name} --date YYYY-MM-DD)")
    click.echo("  make dev                                                               # the UI and the daemon")


@project.command("list")
@click.option("--workspace", default="workspace.yaml", show_default=True)
def project_list(workspace: str) -> None:
    """Every project: owners, code location, and whether it loads."""
    from algo_platform.cli.scaffold import project_statuses

    rows = project_statuses(projects_dir(), Path(workspace))
    if not rows:
        click.echo(f"no projects in {projects_dir()}/; create one with `algo-platform project new NAME`")
        return
    for row in rows:
        click.echo(f"{row.name:<16} {row.location:<26} {row.status:<6} {', '.join(row.owners)}")
        if row.problem:
            click.echo("    " + row.problem.replace("\n", "\n    "))
    if any(row.problem for row in rows):
        sys.exit(1)
