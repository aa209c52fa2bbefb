"""The Dagster side: a project's code location (assets, checks, jobs, schedules, sensors and
resources), partitions, backfills. The only library package that imports dagster."""
