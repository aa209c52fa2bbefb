"""The guarded Dagster UI (`webserver`) and, for local work, the UI with the daemon (`dev`)."""

from __future__ import annotations

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def webserver(ctx: click.Context) -> None:
    """The Dagster UI behind sign-in, roles per project and the audit log; takes every `dagster-webserver` option."""
    from algo_platform.web.server import webserver as serve

    serve(ctx.args)


@click.command()
@click.option("-w", "--workspace", default="workspace.yaml", show_default=True)
@click.option("-h", "--host", default="127.0.0.1", show_default=True)
@click.option("-p", "--port", default=3000, show_default=True)
def dev(workspace: str, host: str, port: int) -> None:
    """The guarded UI and the Dagster daemon (sensors, schedules, run queue) for local work."""
    from algo_platform.web.server import dev as run_dev

    run_dev(workspace, host, port)
