"""`algo-platform fleet`: the GPU fleet file on this instance without Kubernetes."""

from __future__ import annotations

from pathlib import Path

import click

from algo_platform.cli.options import fleet_option


@click.group()
def fleet() -> None:
    """The GPU fleet (deploy/gpu-fleet.yaml)."""


@fleet.command("local-pools")
@fleet_option
def local_pools(fleet_path: str | None) -> None:
    """Set each team's Dagster pool (gpu-<queue>) to its GPU quota, as Kueue holds it on a cluster."""
    import dagster as dg

    from algo_platform.core.fleet import FleetError, load_fleet, local_pool_limits

    try:
        limits = local_pool_limits(load_fleet(Path(fleet_path) if fleet_path else None))
    except FleetError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    with dg.DagsterInstance.get() as instance:
        for pool, gpus in limits.items():
            instance.event_log_storage.set_concurrency_slots(pool, gpus)
            click.echo(f"pool {pool}: {gpus} at a time")
