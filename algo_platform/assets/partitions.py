"""Partitioning shared by every per-day asset."""

import warnings

import dagster as dg

from algo_platform.settings import load_settings

_settings = load_settings()

# One partition per UTC day; the newest partition is yesterday, the latest complete day.
daily_partitions = dg.DailyPartitionsDefinition(start_date=_settings.partitions_start, timezone="UTC")
TRAINING_WINDOW_DAYS = _settings.training_window_days

# Backfills run one day per run: memory stays bounded by one day of events (10M/day would not fit
# 30 days in one process), days run in parallel up to the run queue's limit, and every day gets
# its own quality-check results, which a multi-day run could not report per partition.
one_day_per_run = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)

# Checks on daily assets must validate the run's partition, which needs `partitions_def` on the
# check: a preview feature in Dagster 1.13 (without it the check loads the first partition).
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
# BackfillPolicy is beta in 1.13; multi-run with one partition per run is the long-standing behaviour.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
