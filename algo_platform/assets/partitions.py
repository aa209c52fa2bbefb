"""Partitioning shared by every per-day asset."""

import dagster as dg

from algo_platform.settings import load_settings

_settings = load_settings()

# One partition per UTC day; the newest partition is yesterday, the latest complete day.
daily_partitions = dg.DailyPartitionsDefinition(start_date=_settings.partitions_start, timezone="UTC")
TRAINING_WINDOW_DAYS = _settings.training_window_days
