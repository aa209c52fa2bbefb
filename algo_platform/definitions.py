"""The one `Definitions` object for the current environment (see settings.py)."""

from __future__ import annotations

import dagster as dg

from algo_platform.assets import ALL_ASSETS, ALL_CHECKS
from algo_platform.jobs import ALL_JOBS
from algo_platform.jobs.automation import landing_zone_sensor, nightly_retraining
from algo_platform.resources import build_resources
from algo_platform.settings import Settings, load_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=ALL_JOBS,
        schedules=[nightly_retraining],
        sensors=[landing_zone_sensor],
        resources=build_resources(settings),
    )


defs = build_definitions()
