"""Data in: synthetic days, uploads, history imports, and backfills of the ingest over a range."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from algo_platform.cli.options import load_project_named, parse_date, project_option
from algo_platform.cli.users import audit_cli_action, shell_user
from algo_platform.core import environment
from algo_platform.core.settings import load_settings


@click.command()
@click.option("--days", default=7, show_default=True, help="How many consecutive days to generate.")
@click.option("--events-per-day", default=40_000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--defect-rate", default=0.0, show_default=True, help="Share of rows with planted defects, e.g. 0.02.")
@click.option("--end-date", default=None, help="Last day (YYYY-MM-DD); default yesterday (UTC).")
@project_option
def generate(
    days: int, events_per_day: int, seed: int, defect_rate: float, end_date: str | None, project_name: str
) -> None:
    """Write synthetic short-video events into a project's landing zone."""
    from algo_platform.ingest.datagen import generate_for_project

    project, settings = load_project_named(project_name), load_settings()
    end = parse_date(end_date) if end_date else None
    try:
        root = settings.layout.project(project.name).root
        written = generate_for_project(root, project, days, events_per_day, seed, defect_rate, end)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for day in written:
        defects = sum(day.defects.values())
        click.echo(f"{day.day}: {day.rows:>10,} events ({defects:,} with planted defects) -> {day.path}")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--date", "day", required=True, help="The day these events belong to (YYYY-MM-DD).")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="CANONICAL=SOURCE",
    help="Map a source column onto a canonical one, e.g. --map user_id=userId (repeatable); "
    "added to the project's data.column_map.",
)
@click.option(
    "--server",
    default=None,
    metavar="URL",
    help="Upload through the platform's webserver (as a signed-in editor) instead of to the storage directly.",
)
@click.option("--user", default=None, envvar="ALGO_PLATFORM_USER", help="With --server: who signs in.")
@click.option("--dry-run", is_flag=True, help="Show what the file holds and what cleaning would drop; land nothing.")
@project_option
def upload(
    path: str,
    day: str,
    mappings: tuple[str, ...],
    server: str | None,
    user: str | None,
    dry_run: bool,
    project_name: str,
) -> None:
    """Check an event file (Parquet, CSV, JSONL) and copy it into a project's landing zone atomically."""
    from algo_platform.engines.polars.preview import PreviewRefused, preview_upload
    from algo_platform.ingest.for_project import column_mapping, upload_for_project
    from algo_platform.ingest.upload import UploadError

    if dry_run:
        project = load_project_named(project_name)
        try:
            result, preview = preview_upload(project, load_settings(), path, day, mappings)
        except (UploadError, PreviewRefused, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        for line in preview.lines():
            click.echo(line)
        state = "already landed: nothing would change" if result.already_present else f"would land at {result.target}"
        click.echo(f"{state} (dry run: nothing was written)")
        return
    if server:
        _upload_through_server(server, user, path, day, mappings, project_name)
        return
    project = load_project_named(project_name)
    try:
        mapping = column_mapping(project, mappings)
        result = upload_for_project(project, load_settings(), path, day, mappings)
    except (UploadError, ValueError) as exc:
        audit_cli_action("upload", "failed", project.name, Path(path).name, str(exc))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    audit_cli_action("upload", "allowed", project.name, result.target, f"{result.rows:,} rows for {day}")
    if result.already_present:
        click.echo(f"{result.target}: identical file already landed; nothing to do")
        return
    click.echo(f"landed {result.rows:,} rows -> {result.target}")
    if result.note:
        click.echo(f"note: {result.note}")
    if result.ignored_columns:
        click.echo(
            f"note: column(s) {', '.join(result.ignored_columns)} are not loaded: neither canonical nor declared; "
            f"to keep one, add it to data.extra_columns in projects/{project.name}/project.yaml "
            "(and --map it if its name differs)",
            err=True,
        )
    if result.rows_outside_day:
        click.echo(f"warning: {_outside_day_consequence(result.rows_outside_day, result.rows, day)}", err=True)
        click.echo(
            f"         to land every row on its own day: algo-platform import {path} --project {project.name} "
            + " ".join(f"--map {c}={s}" for c, s in mapping.items() if project.data.column_map.get(c) != s),
            err=True,
        )


@click.command(name="import")
@click.argument("source")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="CANONICAL=SOURCE",
    help="Map a source column onto a canonical or declared extra one, e.g. --map user_id=userId (repeatable).",
)
@click.option("--memory-mb", default=512, show_default=True, help="Memory the import may use for one day bucket.")
@click.option("--dry-run", is_flag=True, help="Show what the file holds and what cleaning would drop; land nothing.")
@project_option
def import_history(source: str, mappings: tuple[str, ...], memory_mb: int, dry_run: bool, project_name: str) -> None:
    """Split a history file (CSV, JSONL, Parquet; a path or an fsspec URL) by event day into the landing zone."""
    from algo_platform.engines.polars.preview import PreviewRefused, preview_history_file
    from algo_platform.ingest.backfill_size import partitions_per_run
    from algo_platform.ingest.for_project import column_mapping, import_for_project
    from algo_platform.ingest.importer import ImportRefused, dates_refusal

    project = load_project_named(project_name)
    if dry_run:
        try:
            preview = preview_history_file(source, column_mapping(project, mappings), project.data.extra_columns)
        except (PreviewRefused, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        for line in preview.lines():
            click.echo(line)
        _print_rows_per_day(dict(sorted(preview.rows_per_day.items())))
        click.echo("dry run: nothing was written (duplicates are counted within each batch the import reads)")
        refusal = dates_refusal(Path(source).name, preview.rows_per_day, project.partitions_start.isoformat(),
                                project.calendar.project_file)  # fmt: skip
        if refusal:
            click.echo(f"error: import would refuse it: {refusal}", err=True)
            sys.exit(1)
        return
    try:
        result = import_for_project(
            project, load_settings(), source, mappings, memory_bytes=memory_mb << 20, progress=ProgressLine()
        )
    except (ImportRefused, ValueError) as exc:
        audit_cli_action("import", "failed", project.name, source, str(exc))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    audit_cli_action("import", "allowed", project.name, source, f"import {result.import_id}: {result.rows:,} rows")
    if result.already_imported:
        click.echo(f"{source}: already imported with this mapping (import {result.import_id}); nothing to do")
    else:
        click.echo(
            f"imported {result.rows:,} rows on {len(result.rows_per_day):,} days "
            f"({result.first_day}..{result.last_day}) into {project.name} (import {result.import_id})"
        )
        _print_rows_per_day(result.rows_per_day)
        click.echo(f"manifest: {result.manifest}")
    for earlier in result.superseded:
        click.echo(
            f"note: these bytes were imported before with another mapping (import {earlier}); this is a new import, "
            "and the earlier one's files moved to quarantine"
        )
    if result.rows_without_time:
        click.echo(
            f"warning: {result.rows_without_time:,} rows have no timestamp, so no day: kept in {result.quarantined}",
            err=True,
        )
    if result.ignored_columns:
        click.echo(
            f"note: column(s) {', '.join(result.ignored_columns)} are not loaded: neither canonical nor declared; "
            f"to keep one, add it to data.extra_columns in projects/{project.name}/project.yaml",
            err=True,
        )
    if result.rows_per_day:
        calendar, last = project.calendar, result.last_day
        newest = calendar.period(calendar.last().isoformat())
        if calendar.period_of(last).start > newest.start:  # the period still filling is not a partition yet
            last = newest.last_day.isoformat()
            click.echo(
                f"note: days after {last} are in the {project.data.partition} still filling: it becomes a partition "
                "when it ends, and the landing-zone sensor (or a backfill then) ingests it",
                err=True,
            )
        click.echo(
            "next: ingest every partition of the range (periods without events become empty partitions) in one "
            f"backfill:\n  algo-platform backfill --project {project.name} --from {result.first_day} --to {last} --wait"
        )
        size = partitions_per_run(project, load_settings().layout.project(project.name).root)
        click.echo(f"  it will ingest up to {size.partitions:,} {project.data.partition}s per run ({size.why})")
        if project.sensor.enabled:
            click.echo(
                f"note: {project.name}'s landing-zone sensor is on: it also asks for these days, one run per day; "
                "stop it for a history import (the backfill ingests them in fewer runs)",
                err=True,
            )


@click.command()
@click.option("--from", "first", default=None, help="First day (YYYY-MM-DD): its partition is the first ingested.")
@click.option("--to", "last", default=None, help="Last day (YYYY-MM-DD): its partition is the last ingested.")
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[BACKFILL_ID]",
    help="Rerun only what a finished backfill did not materialize (the project's latest if no id is given).",
)
@click.option("--wait", is_flag=True, help="Follow the backfill until it ends: partitions done, rate, ETA.")
@project_option
def backfill(first: str | None, last: str | None, resume: str | None, wait: bool, project_name: str) -> None:
    """Ingest every partition of a range as one asset backfill (periods without events become empty
    partitions); or resume one whose runs failed."""
    import dagster as dg

    from algo_platform.definitions import build_project_definitions
    from algo_platform.ingest.backfill_size import with_run_size
    from algo_platform.jobs import backfill as backfills

    if not environment.read("DAGSTER_HOME"):
        raise click.UsageError("DAGSTER_HOME is not set: it names the instance whose daemon runs the backfill")
    a_range = first is not None and last is not None
    if (resume is None and not a_range) or (resume is not None and (first or last)):
        raise click.UsageError("give --from and --to for a new backfill, or --resume [BACKFILL_ID] for a failed one")
    project = load_project_named(project_name)
    defs = build_project_definitions(project, load_settings())
    project = with_run_size(project, load_settings().layout.project(project.name).root)
    with dg.DagsterInstance.get() as instance:
        try:
            if resume is not None:
                backfill_id = _resume(instance, defs, project, resume, backfills)
            else:
                backfill_id = _request(instance, defs, project, first, last, backfills)
        except ValueError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        if not wait:
            return
        progress, cause = _follow(instance, defs, backfill_id)
    if not progress.complete:
        click.echo(
            f"backfill {backfill_id} ended {progress.status.value.lower()} with {progress.total - progress.done:,} "
            f"asset partitions not materialized ({progress.failed_runs} failed runs; the UI shows the rest under "
            f"Overview > Backfills). To rerun only those: algo-platform backfill --project {project.name} "
            f"--resume {backfill_id} --wait",
            err=True,
        )
        if cause:
            click.echo(f"cause: {cause}", err=True)
        sys.exit(1)
    click.echo(f"backfill {backfill_id}: every partition materialized")


@click.command()
@click.option(
    "--partition", default=None, help="The partition to train for (its window ends there); default: the latest."
)
@click.option("--wait", is_flag=True, help="Follow the run until it ends; exit 1, with the cause, if it fails.")
@project_option
def retrain(partition: str | None, wait: bool, project_name: str) -> None:
    """Run the project's retrain job (sequences, model, evaluation, champion, recommendations) for one
    partition, through the daemon, as the UI's launch or the nightly schedule would."""

    import dagster as dg

    from algo_platform.definitions import build_project_definitions
    from algo_platform.jobs import backfill as backfills

    if not environment.read("DAGSTER_HOME"):
        raise click.UsageError("DAGSTER_HOME is not set: it names the instance whose daemon runs the retrain")
    project = load_project_named(project_name)
    try:
        key = project.calendar.period_of(partition).key if partition else None
    except ValueError as error:
        raise click.UsageError(f"--partition {partition}: {error}") from None
    defs = build_project_definitions(project, load_settings())
    with dg.DagsterInstance.get() as instance:
        if key is None:
            key, why = default_retrain_partition(instance, project)
            click.echo(f"no --partition: {key}, {why}")
        backfill_id = backfills.running_retrain(instance, project, key)
        if backfill_id is not None:
            click.echo(f"a retrain of {project.name} for {key} is already running (backfill {backfill_id}); "
                       "following it instead of queuing another")  # fmt: skip
        else:
            backfill_id = backfills.request_retrain(instance, defs, project, key, {"user": shell_user()})
            audit_cli_action("retrain", "allowed", project.name, f"backfill {backfill_id}", f"partition {key}")
            click.echo(f"retrain of {project.name} for {key} queued (backfill {backfill_id}); the daemon runs it")
        if not wait:
            return
        progress, cause = _follow(instance, defs, backfill_id)
    if cause is not None or not progress.complete:
        click.echo(f"retrain of {project.name} for {key} failed: {cause or progress.status.value.lower()}", err=True)
        sys.exit(1)
    click.echo(f"retrain of {project.name} for {key}: model, evaluation, champion and recommendations materialized")


def default_retrain_partition(instance, project) -> tuple[str, str]:
    """The partition a retrain without `--partition` trains for, and why: the last one whose events
    are cleaned (an imported history may have ended years ago), or with none yet, the last complete one."""
    import datetime as dt

    import dagster as dg

    ingested = instance.get_materialized_partitions(dg.AssetKey([project.name, "cleaned_events"]))
    if ingested:
        return max(ingested), "the last ingested partition"
    return project.calendar.latest_complete(dt.datetime.now(dt.UTC)), "the last complete partition (nothing ingested)"


def _follow(instance, defs, backfill_id: str):
    """Follow a backfill until it ends, reporting its progress: (progress, why it failed or None)."""
    from algo_platform.jobs import backfill as backfills

    progress = backfills.follow_backfill(
        lambda: backfills.backfill_progress(instance, defs, backfill_id), _report_progress, stalled=_no_daemon
    )
    return progress, None if progress.complete else backfills.failure_cause(instance, backfill_id)


def _no_daemon(seconds: float) -> None:
    click.echo(
        f"note: no run has started after {_duration(seconds)}: is the daemon running on this DAGSTER_HOME? "
        "(`make dev` starts one; so does `dagster-daemon run -w workspace.yaml`)",
        err=True,
    )


def _request(instance, defs, project, first: str, last: str, backfills) -> str:
    backfill_id, partitions = backfills.request_ingest_backfill(
        instance, defs, project, first, last, extra_tags={"user": shell_user()}
    )
    grain = project.data.partition
    audit_cli_action(
        "backfill", "allowed", project.name, f"backfill {backfill_id}", f"{first}..{last}: {partitions} {grain}s"
    )
    per_run = project.data.days_per_run
    click.echo(
        f"backfill {backfill_id}: ingest of {partitions:,} {grain}s ({first}..{last}), up to {per_run} per run "
        f"({-(-partitions // per_run):,} runs). The daemon runs it (`make dev` starts one); the UI shows it under "
        "Overview > Backfills."
    )
    if per_run == 1 and partitions > 100 and project.data.engine != "spark":
        click.echo(
            f"note: {project.name} ingests one {grain} per run (data.days_per_run: 1); for small {grain}s, set it to "
            f"hundreds in projects/{project.name}/project.yaml (each run costs seconds to start), or choose a "
            "coarser data.partition (week, month) for a sparse log",
            err=True,
        )
    return backfill_id


def _resume(instance, defs, project, resume: str, backfills) -> str:
    if resume == "latest":
        latest = backfills.latest_backfill(instance, project)
        if latest is None:
            raise ValueError(f"{project.name} has no backfill in this instance to resume")
        resume = latest.backfill_id
    backfill_id, missing = backfills.resume_ingest_backfill(instance, defs, resume, {"user": shell_user()})
    audit_cli_action("backfill", "allowed", project.name, f"backfill {backfill_id}", f"resumes {resume}: {missing}")
    click.echo(
        f"backfill {backfill_id} resumes {resume} (Dagster's re-execution from failure): {missing:,} asset partitions "
        "that were not materialized; the partitions it did materialize are not run again"
    )
    return backfill_id


class ProgressLine:
    """Progress of a long command on stderr, at most every `every` seconds: how much is done, the
    rate, and the time left where the total is known."""

    def __init__(self, every: float = 2.0) -> None:
        self.began, self.every, self.last, self.stage = time.monotonic(), every, 0.0, ""

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage != self.stage:  # each stage's rate from its own start
            self.began, self.stage = now, stage
        if now - self.last < self.every and done != total:
            return
        self.last, seconds = now, now - self.began
        rate = done / seconds if seconds > 0 else 0.0
        unit = "rows" if stage == "read" else "days"
        of = f"/{total:,}" if total else ""
        left = f", about {_duration((total - done) / rate)} left" if total and rate and done < total else ""
        click.echo(f"[{_duration(seconds)}] {stage}: {done:,}{of} {unit} ({rate:,.0f} {unit}/s){left}", err=True)


def _report_progress(progress, seconds: float) -> None:
    rate = progress.done / seconds if seconds > 0 else 0.0
    left = progress.total - progress.done - progress.failed
    eta = f", about {_duration(left / rate)} left" if rate > 0 and not progress.finished else ""
    failed = f", {progress.failed:,} failed" if progress.failed else ""
    click.echo(
        f"[{_duration(seconds)}] {progress.status.value.lower()}: {progress.done:,}/{progress.total:,} asset "
        f"partitions ({progress.done / max(progress.total, 1):.0%}){failed}, {progress.runs} runs, "
        f"{rate:,.1f}/s{eta}"
    )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _upload_through_server(
    server: str, user: str | None, path: str, day: str, mappings: tuple[str, ...], project_name: str
) -> None:
    """POST the file to the webserver's /platform/upload, signed in as USER (password: ALGO_PLATFORM_PASSWORD)."""
    from algo_platform.web.client import PlatformClient, PlatformClientError

    if not user:
        raise click.UsageError("--server needs --user NAME (or ALGO_PLATFORM_USER)")
    password = environment.read("ALGO_PLATFORM_PASSWORD") or click.prompt(f"Password for {user}", hide_input=True)
    try:
        client = PlatformClient.sign_in(server, user, password)
        answer = client.upload(Path(path), project_name, day, mappings)
    except PlatformClientError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(answer)


def _print_rows_per_day(rows_per_day: dict[str, int], most: int = 31) -> None:
    """Every day when there are few; otherwise one line per month (the manifest has every day)."""
    if len(rows_per_day) <= most:
        for day, rows in rows_per_day.items():
            click.echo(f"  {day}  {rows:>10,} rows")
        return
    months: dict[str, list[int]] = {}
    for day, rows in rows_per_day.items():
        months.setdefault(day[:7], []).append(rows)
    for month, rows in months.items():
        click.echo(f"  {month}  {sum(rows):>10,} rows on {len(rows):>2} days")


def _outside_day_consequence(outside: int, rows: int, day: str) -> str:
    """What rows with timestamps on other days do to the day they were uploaded to, said plainly."""
    from algo_platform.resources.data_quality import DataQuality

    threshold = DataQuality().quality_threshold
    share = outside / rows
    what = f"{outside:,} of {rows:,} rows ({share:.0%}) have timestamps outside {day}; "
    if 1 - share < threshold:
        return what + (
            f"{day}'s timeliness falls to about {1 - share:.2f}, below the quality gate's {threshold}, so its ingest "
            "fails and nothing downstream runs for it"
        )
    return what + f"{day} is ingested without them: they are dropped as outside_partition_day and counted there"
