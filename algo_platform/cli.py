"""`algo-platform`: generate data, upload files, run the demo."""

from __future__ import annotations

import datetime as dt
import os
import sys

import click

from algo_platform.settings import load_settings


@click.group()
def main() -> None:
    """algo-platform: user-behaviour data, quality checks, PyTorch training, on Dagster."""


@main.command()
@click.option("--days", default=7, show_default=True, help="How many consecutive days to generate.")
@click.option("--events-per-day", default=40_000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--defect-rate", default=0.0, show_default=True, help="Share of rows with planted defects, e.g. 0.02.")
@click.option("--end-date", default=None, help="Last day (YYYY-MM-DD); default yesterday (UTC).")
def generate(days: int, events_per_day: int, seed: int, defect_rate: float, end_date: str | None) -> None:
    """Write synthetic short-video events into the landing zone."""
    from algo_platform.datagen import generate as generate_events

    settings = load_settings()
    end = _parse_date(end_date) if end_date else None
    try:
        written = generate_events(settings.storage_root, days, events_per_day, seed, defect_rate, end)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for day in written:
        defects = sum(day.defects.values())
        click.echo(f"{day.day}: {day.rows:>10,} events ({defects:,} with planted defects) -> {day.path}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--date", "day", required=True, help="The day these events belong to (YYYY-MM-DD).")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="CANONICAL=SOURCE",
    help="Map a source column onto a canonical one, e.g. --map user_id=userId (repeatable).",
)
def upload(path: str, day: str, mappings: tuple[str, ...]) -> None:
    """Check an event file (Parquet, CSV, JSONL) and copy it into the landing zone atomically."""
    from algo_platform.landing import parse_column_mapping
    from algo_platform.upload import UploadError, upload_event_file

    try:
        mapping = parse_column_mapping(list(mappings))
        settings = load_settings()
        result = upload_event_file(path, day, mapping, settings.storage_root, settings.partitions_start)
    except (UploadError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if result.already_present:
        click.echo(f"{result.target}: identical file already landed; nothing to do")
        return
    click.echo(f"landed {result.rows:,} rows -> {result.target}")
    if result.note:
        click.echo(f"note: {result.note}")
    if result.rows_outside_day:
        click.echo(
            f"warning: {result.rows_outside_day:,} rows have timestamps outside {day}; "
            "they will be counted and dropped when the day is cleaned",
            err=True,
        )


@main.command()
@click.option("--days", default=7, show_default=True, help="Days of data; the last one is held out for evaluation.")
@click.option("--events-per-day", default=40_000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--defect-rate", default=0.01, show_default=True)
@click.option("--epochs", default=None, type=int, help="Training epochs (default: the trainer's default).")
def demo(days: int, events_per_day: int, seed: int, defect_rate: float, epochs: int | None) -> None:
    """Generate data, materialize the whole asset graph for the latest day, print the results."""
    from algo_platform.demo import run_demo

    if not os.environ.get("DAGSTER_HOME"):
        raise click.UsageError("DAGSTER_HOME is not set; `make demo` sets it to ./dagster_home")
    settings = load_settings()
    if days < settings.training_window_days:
        raise click.UsageError(
            f"--days {days} is shorter than the training window of {settings.training_window_days} days "
            f"(ALGO_PLATFORM_TRAINING_WINDOW_DAYS): use --days {settings.training_window_days} or more, or set "
            f"ALGO_PLATFORM_TRAINING_WINDOW_DAYS={max(days, 2)}"
        )
    if days > settings.training_window_days:
        click.echo(f"note: only the last {settings.training_window_days} days form the training window")
    run_demo(settings, days, events_per_day, seed, defect_rate, epochs, echo=click.echo)


@main.command()
@click.option(
    "--events", default=10_000_000, show_default=True, help="Events per data comparison (the retrain path: at most 2M)."
)
@click.option("--quick", is_flag=True, help="Tiny data, one repetition: proves the harness, measures nothing.")
def bench(events: int, quick: bool) -> None:
    """Run every benchmark comparison; print a table and write JSON + Markdown to benchmarks/results/."""
    if "algo_platform.assets" in sys.modules:
        raise click.UsageError("run `algo-platform bench` in its own process")
    # The retrain-path row trains on a two-day window; partition mappings read this at import.
    os.environ["ALGO_PLATFORM_TRAINING_WINDOW_DAYS"] = "2"
    from benchmarks.suite import render, run, save

    events = min(events, 20_000) if quick else events
    rows = run(events, quick)
    click.echo(render(rows, events, quick))
    json_path, markdown_path = save(rows, events, quick)
    click.echo(f"written: {json_path}, {markdown_path}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def webserver(ctx: click.Context) -> None:
    """The Dagster UI with cross-site writes refused; takes every `dagster-webserver` option."""
    from algo_platform.web.server import webserver as serve

    serve(ctx.args)


@main.command()
@click.option("-w", "--workspace", default="workspace.yaml", show_default=True)
@click.option("-h", "--host", default="127.0.0.1", show_default=True)
@click.option("-p", "--port", default=3000, show_default=True)
def dev(workspace: str, host: str, port: int) -> None:
    """The guarded UI and the Dagster daemon (sensors, schedules, run queue) for local work."""
    from algo_platform.web.server import dev as run_dev

    run_dev(workspace, host, port)


@main.group()
def k8s() -> None:
    """Kubernetes helpers."""


@k8s.command("render-training-pod")
@click.option("--gpus", default=1, show_default=True, type=click.IntRange(min=0))
@click.option("--image", default=None, help="Trainer image (default: ALGO_PLATFORM_TRAINER_IMAGE).")
@click.option("--namespace", default=None, help="Namespace (default: ALGO_PLATFORM_K8S_NAMESPACE).")
@click.option("--partition", default=None, help="Day to train for (default: yesterday, UTC).")
@click.option("--epochs", default=None, type=int)
def render_training_pod(
    gpus: int, image: str | None, namespace: str | None, partition: str | None, epochs: int | None
) -> None:
    """Print the trainer pod manifest that the kubernetes launcher submits, as YAML."""
    import yaml

    from algo_platform.datagen import default_end_date
    from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
    from algo_platform.training.config import TrainConfig

    settings = load_settings()
    day = partition or default_end_date().isoformat()
    launcher = K8sTrainingLauncher(
        image=image or settings.trainer_image,
        namespace=namespace or settings.k8s_namespace,
        gpus=gpus,
        storage_root=settings.storage_root,
    )
    defaults = TrainConfig()
    args = [
        "--sequences", settings.storage_path("assets", "training_sequences", f"{day}.parquet"),
        "--vocabulary", settings.storage_path("assets", "item_vocabulary", f"{day}.parquet"),
        "--output-dir", settings.storage_path("models", "sequence_model", day, "<training-key>"),
        "--epochs", str(epochs or defaults.epochs),
    ]  # fmt: skip
    pod = launcher.render_pod(args, pod_name=f"algo-platform-trainer-preview-{day}")
    click.echo(yaml.safe_dump(pod, sort_keys=False), nl=False)


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


if __name__ == "__main__":
    main()
