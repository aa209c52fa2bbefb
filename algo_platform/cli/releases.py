"""`algo-platform release status | pause | resume | advance | roll-back --project P`: a project's grey
release from a terminal (the page `/platform/releases/<project>` shows and does the same).

They act on the registry and the Dagster instance in DAGSTER_HOME, like the pipeline's own report;
each change is audited under the operating-system user who ran it, as `users ...` is.
"""

from __future__ import annotations

from contextlib import contextmanager

import click

from algo_platform.cli.options import load_project_named, project_option
from algo_platform.cli.users import shell_user
from algo_platform.core.settings import load_settings
from algo_platform.release.decisions import ReleaseActionError


@contextmanager
def _instance():
    import dagster as dg

    try:
        instance = dg.DagsterInstance.get()
    except Exception as error:  # DAGSTER_HOME unset or unreadable: say so, not a traceback
        raise click.UsageError(f"no Dagster instance: {error}; set DAGSTER_HOME to the instance's folder") from None
    with instance:
        yield instance


task_option = click.option(
    "--task",
    "task_name",
    default="next_item",
    show_default=True,
    help="Whose release: next_item or a task's name.",
)


@click.group()
def release() -> None:
    """See and steer a project's grey release (project.yaml's release: section)."""


@release.command("status")
@project_option
@task_option
def release_status(project_name: str, task_name: str) -> None:
    """The release's stage, who is served what, and each judged day: the metric per arm, the effect
    with its always-valid interval, and the decision."""
    from algo_platform.assets.release_control import view

    project = load_project_named(project_name)
    with _instance() as instance:
        try:
            shown = view(instance, load_settings(), project, task_name)
        except ReleaseActionError as error:
            raise click.UsageError(str(error)) from None
    state = shown.state
    if state is None:
        click.echo(f"{project.name} {task_name}: no grey release yet; champion v{shown.champion_version or '-'} serves "
                   "everyone")  # fmt: skip
        return
    stages = " -> ".join(f"{s:g}%" for s in shown.stages)
    click.echo(f"release {state.experiment}: {state.status.replace('_', ' ')}")
    click.echo(f"  challenger v{state.challenger_version} serves {shown.served_percent:g}% of users, champion "
               f"v{shown.champion_version or '-'} the rest")  # fmt: skip
    click.echo(f"  stage {state.stage + 1} of {len(shown.stages)} ({stages}) since {state.stage_since}")
    if not shown.days:
        click.echo("  no day judged yet")
    for d in shown.days:
        click.echo(f"  {d.day} {d.stage_percent:>5g}%  champion {d.champion_mean:.4f} ({d.champion_users:,})  "
                   f"challenger {d.challenger_mean:.4f} ({d.challenger_users:,})  effect {d.effect:+.4f} "
                   f"[{d.low:+.4f}, {d.high:+.4f}]  {d.decision}")  # fmt: skip
        click.echo("      " + d.why.replace("- ", "").replace("\n", "; "))


def _action_command(action: str, help_text: str):
    @release.command(action.replace("_", "-"), help=help_text)
    @project_option
    @task_option
    @click.option("--reason", default="", help="Why, for the audit log and the version's tags.")
    def command(project_name: str, task_name: str, reason: str) -> None:
        from algo_platform.assets.release_control import act

        project = load_project_named(project_name)
        with _instance() as instance:
            try:
                decision = act(
                    instance, load_settings(), project, action, shell_user(), "shell", "cli", reason, task_name
                )
            except ReleaseActionError as error:
                raise click.UsageError(str(error)) from None
        state = decision.state
        now = f"now {state.status.replace('_', ' ')}, stage {state.stage + 1}, from {state.stage_since}"
        click.echo(f"release {state.experiment}: {decision.action.replace('_', ' ')} ({now})")

    return command


for _action, _help in (
    ("pause", "Hold the release: everyone gets the champion until it is resumed."),
    ("resume", "Resume a paused release; its stage counts afresh from the next lists built."),
    ("advance", "Widen to the next stage now (at the last stage: promote the challenger)."),
    ("roll_back", "End the release: everyone gets the champion; the challenger is not promoted."),
):
    _action_command(_action, _help)


@release.command("simulate")
@project_option
@click.option("--days", default=7, show_default=True, help="How many days to simulate, one after another.")
@click.option("--events-per-day", default=40_000, show_default=True, help="As given to `generate` for this project.")
@click.option("--seed", default=0, show_default=True, help="As given to `generate`: the same users answer.")
@click.option("--start", default=None, help="First day (YYYY-MM-DD); default the day after the last one ingested.")
def release_simulate(project_name: str, days: int, events_per_day: int, seed: int, start: str | None) -> None:
    """Simulate N days of serve, respond, ingest, report and decide: the generator's users play what
    they are served by their hidden taste, and the project's own jobs run on each day."""
    import datetime as dt

    import dagster as dg

    from algo_platform.cli.options import parse_date
    from algo_platform.cli.simulate import ReleaseSimulation
    from algo_platform.ingest.datagen import world_for

    project = load_project_named(project_name)
    with _instance() as instance:
        if start:
            first = parse_date(start)
        else:
            ingested = instance.get_materialized_partitions(dg.AssetKey([project.name, "cleaned_events"]))
            if not ingested:
                raise click.UsageError(f"{project.name} has ingested nothing yet: backfill first, or give --start")
            first = dt.date.fromisoformat(max(ingested)) + dt.timedelta(days=1)
        try:
            simulation = ReleaseSimulation(project, load_settings(), instance, world_for(events_per_day, seed),
                                           events_per_day, seed)  # fmt: skip
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        for offset in range(days):
            day = simulation.live(first + dt.timedelta(days=offset))
            judged = [f"{name} {r['decision']}: {r['why'].replace('- ', '')}" for name, r in day.reports.items()]
            if not day.retrain.success:
                failed = ", ".join(sorted(day.retrain.get_failed_step_keys())) or "?"
                raise click.ClickException(f"{day.day}: the run failed at {failed}; its log is in the Dagster UI")
            click.echo(f"{day.day}: " + ("; ".join(line.splitlines()[0] for line in judged) or "no release"))
