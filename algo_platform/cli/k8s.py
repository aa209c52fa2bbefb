"""Kubernetes helpers: the manifests the platform submits, printed for review."""

from __future__ import annotations

import click

from algo_platform.cli.options import fleet_option, load_project_named, project_option
from algo_platform.core.settings import load_settings


@click.group()
def k8s() -> None:
    """Kubernetes helpers."""


@k8s.command("render-training-pod")
@project_option
@click.option("--gpus", default=None, type=click.IntRange(min=0), help="GPUs (default: the project's compute.gpus).")
@click.option("--image", default=None, help="Trainer image (default: ALGO_PLATFORM_TRAINER_IMAGE).")
@click.option("--partition", default=None, help="Day to train for (default: yesterday, UTC).")
@click.option("--epochs", default=None, type=int)
@click.option("--nodes", default=None, type=click.IntRange(min=1), help="Nodes (default: the project's compute.nodes).")
def render_training_pod(
    project_name: str,
    gpus: int | None,
    image: str | None,
    partition: str | None,
    epochs: int | None,
    nodes: int | None,
) -> None:
    """Print the trainer pod manifest that the kubernetes launcher submits for a project, as YAML
    (with several nodes: the headless Service and the Indexed Job)."""
    import dataclasses

    import yaml

    from algo_platform.ingest.datagen import default_end_date
    from algo_platform.resources.environment import build_training_launcher

    project, settings = load_project_named(project_name), load_settings()
    settings = dataclasses.replace(settings, env="kubernetes", trainer_image=image or settings.trainer_image)
    launcher = build_training_launcher(settings, project)
    if gpus is not None:
        launcher = launcher.model_copy(update={"gpus": gpus})
    day = partition or default_end_date().isoformat()
    layout = settings.layout.project(project.name)
    args = [
        "--sequences", layout.table("training_sequences", day),
        "--vocabulary", layout.table("item_vocabulary", day),
        "--output-dir", layout.model_output("sequence_model", day, "<training-key>"),
        "--epochs", str(epochs or project.model.hyperparameters()["epochs"]),
        "--strategy", project.compute.strategy,
    ]  # fmt: skip
    nodes = nodes or project.compute.nodes
    if nodes > 1:
        from algo_platform.resources.k8s_multinode import render_training_job

        job = f"trainer-{project.name.replace('_', '-')}-{day}"
        click.echo(yaml.safe_dump_all(render_training_job(launcher, args, job, nodes), sort_keys=False), nl=False)
        return
    pod = launcher.render_pod(args, pod_name=f"algo-platform-trainer-preview-{project.name}-{day}")
    click.echo(yaml.safe_dump(pod, sort_keys=False), nl=False)


@k8s.command("render-queues")
@fleet_option
def render_queues_command(fleet_path: str | None) -> None:
    """Print Kueue's objects (flavors, priorities, a ClusterQueue per team, a LocalQueue per project)."""
    from pathlib import Path

    from algo_platform.core.fleet import FleetError, dump_manifests, load_fleet, render_queues
    from algo_platform.core.project import ProjectError, load_project, project_names, projects_dir

    try:
        fleet = load_fleet(Path(fleet_path) if fleet_path else None)
        folder = projects_dir()
        projects = [load_project(folder / name) for name in project_names(folder)]
        for project in projects:
            fleet.check_project(project.name, project.compute)
        objects = render_queues(fleet, [(p.name, p.compute.queue) for p in projects], load_settings().k8s_namespace)
    except (FleetError, ProjectError) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    click.echo(dump_manifests(objects), nl=False)


@k8s.command("reap")
@click.option("--project", default=None, help="Only this project's objects (default: every project's).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
@click.option("--kubeconfig", default=None, help="A kubeconfig file (default: the pod's own service account).")
def reap_command(project: str | None, dry_run: bool, kubeconfig: str | None) -> None:
    """Delete the trainer pods, Jobs, Services and Kueue workloads of ended runs (the sensor
    <project>_k8s_reaper does this every few minutes on a cluster)."""
    import dagster as dg

    from algo_platform.resources.k8s_reaper import Apis, reap

    try:
        apis = Apis.connect(in_cluster=kubeconfig is None, kubeconfig_file=kubeconfig)
    except Exception as error:  # no service account here, or a kubeconfig that does not load
        click.echo(f"error: cannot reach the cluster ({error}); outside a pod, pass --kubeconfig", err=True)
        raise SystemExit(1) from None
    with dg.DagsterInstance.get() as instance:
        reaped = reap(instance, apis, load_settings().k8s_namespace, project, dry_run)
    for name in reaped:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {name}")
    if not reaped:
        click.echo("nothing left behind by ended runs")
