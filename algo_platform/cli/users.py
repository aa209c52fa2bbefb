"""`algo-platform users ...` and `algo-platform audit`: the accounts in the instance's database.

They act on the database of the Dagster instance in DAGSTER_HOME (its PostgreSQL in production),
the one the webserver reads, so a change takes effect on open sessions at their next request.
Each change is itself written to the audit log, under the operating-system user who ran it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from contextlib import contextmanager

import click

from algo_platform.accounts.audit_log import printable
from algo_platform.accounts.principal import AccountError, Role
from algo_platform.accounts.store import Accounts


@contextmanager
def open_accounts():
    import dagster as dg

    try:
        instance = dg.DagsterInstance.get()
    except Exception as error:  # DAGSTER_HOME unset or unreadable: say so, not a traceback
        raise click.UsageError(f"no Dagster instance: {error}; set DAGSTER_HOME to the instance's folder") from None
    with instance:
        accounts = Accounts.for_instance(instance)
        try:
            yield accounts
        finally:
            accounts.close()


def shell_user() -> str:
    return f"shell:{getpass.getuser()}"


def audit_cli_action(action: str, outcome: str, project: str | None, target: str | None, detail: str | None) -> None:
    """Writes a CLI upload or import to the audit log, or says on stderr why it could not."""
    try:
        with open_accounts() as accounts:
            accounts.record(action, outcome, user=shell_user(), role="shell", project=project, target=target,
                            client="cli", detail=detail)  # fmt: skip
    except click.UsageError as error:
        click.echo(f"note: not audited ({error.message})", err=True)


def _change(action: str, name: str, change, project: str | None = None, detail: str | None = None):
    """Apply `change(accounts)`, then audit it (when it returns anything but False); its result."""
    with open_accounts() as accounts:
        try:
            result = change(accounts)
        except AccountError as error:
            raise click.UsageError(str(error)) from None
        if result is not False:
            accounts.record(f"users.{action}", "allowed", user=shell_user(), role="shell", project=project,
                            target=name, client="cli", detail=detail)  # fmt: skip
    return result


@click.group()
def users() -> None:
    """Add users, grant roles per project, disable users (in the instance's database)."""


def _password(stdin: bool, confirm: bool = True) -> str:
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    if len(password) < 12:
        raise click.UsageError("a password needs at least 12 characters")
    return password


@users.command("add")
@click.argument("name")
@click.option("--platform-admin", is_flag=True, help="Every project, every action, user management.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--no-password", is_flag=True, help="A user who signs in through the identity proxy only.")
def users_add(name: str, platform_admin: bool, password_stdin: bool, no_password: bool) -> None:
    """Add a user (asks for a password unless --no-password)."""
    password = None if no_password else _password(password_stdin)
    admin = "platform admin" if platform_admin else None
    _change("add", name, lambda accounts: accounts.add_user(name, password, platform_admin), detail=admin)
    click.echo(f"added {name}" + (" (platform admin)" if platform_admin else ""))


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True)
def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a user's password; their open sessions end."""
    password = _password(password_stdin)
    _change("passwd", name, lambda accounts: accounts.set_password(name, password))
    click.echo(f"password set for {name}; their open sessions have ended")


@users.command("grant")
@click.argument("name")
@click.argument("project")
@click.argument("role", type=click.Choice([r.name for r in Role]))
def users_grant(name: str, project: str, role: str) -> None:
    """Give NAME the ROLE on PROJECT (viewer < launcher < editor < admin); replaces their role there."""
    from algo_platform.core.project import project_names, projects_dir

    known = project_names(projects_dir())
    if project not in known:
        raise click.UsageError(f"no project {project!r} in {projects_dir()}/ (known: {', '.join(known) or 'none'})")
    _change("grant", name, lambda accounts: accounts.grant(name, project, Role[role]), project, role)
    click.echo(f"{name} is {role} on {project}")


@users.command("revoke")
@click.argument("name")
@click.argument("project")
def users_revoke(name: str, project: str) -> None:
    """Take NAME's role on PROJECT away (at once, on open sessions too)."""
    removed = _change("revoke", name, lambda accounts: accounts.revoke(name, project), project)
    click.echo(f"{name} has no role on {project}" + ("" if removed else " (had none)"))


@users.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Stop NAME signing in; their open sessions end at their next request."""
    _change("disable", name, lambda accounts: accounts.set_disabled(name, True))
    click.echo(f"{name} is disabled")


@users.command("enable")
@click.argument("name")
def users_enable(name: str) -> None:
    """Let a disabled user sign in again."""
    _change("enable", name, lambda accounts: accounts.set_disabled(name, False))
    click.echo(f"{name} is enabled")


@users.command("list")
def users_list() -> None:
    """Every user, their roles, and whether they are disabled."""
    with open_accounts() as accounts:
        listed = accounts.list_users()
    if not listed:
        click.echo("no users; add one with `algo-platform users add NAME --platform-admin`")
    for user in listed:
        roles = ", ".join(f"{p}:{r}" for p, r in sorted(user["roles"].items())) or "no roles"
        flags = [f for f, on in (("platform admin", user["platform_admin"]), ("disabled", user["disabled"])) if on]
        flags += [] if user["password"] else ["proxy sign-in only"]
        click.echo(f"{user['name']}: {roles}" + (f" ({', '.join(flags)})" if flags else ""))


def _since(value: str | None) -> float | None:
    """--since: an ISO date or time (UTC), or a span back from now: 30m, 12h, 7d."""
    if not value:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[-1] in units and value[:-1].isdigit():
        return dt.datetime.now(dt.UTC).timestamp() - int(value[:-1]) * units[value[-1]]
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.UsageError(
            f"--since {value!r}: give a date (2026-11-30), a time, or a span (30m, 12h, 7d)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


@click.command()
@click.option("--user", default=None, help="Only this user's entries.")
@click.option("--project", default=None, help="Only this project's entries.")
@click.option("--since", default=None, help="From this date or time (UTC), or a span back: 30m, 12h, 7d.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(user: str | None, project: str | None, since: str | None, as_json: bool) -> None:
    """Print the audit log: sign-ins, refusals, every allowed change, uploads and imports."""
    with open_accounts() as accounts:
        entries = list(accounts.entries(user=user, project=project, since=_since(since)))
    for entry in entries:
        row = entry.as_dict()
        if as_json:
            click.echo(json.dumps(row))
            continue
        # Rows written before the log escaped control characters could still forge a line.
        row = {key: printable(value, 4000) if isinstance(value, str) else value for key, value in row.items()}
        where = f" {row['project']}" if row["project"] else ""
        why = f"  ({row['detail']})" if row["detail"] else ""
        click.echo(
            f"{row['time']} {row['user'] or '-'} [{row['role'] or '-'}]{where} {row['action']} "
            f"{row['target'] or ''} -> {row['outcome']} from {row['client'] or '-'}{why}"
        )
    if not entries:
        click.echo("no entries", err=True)
