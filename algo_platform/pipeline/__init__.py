"""Deprecated: the import path of projects scaffolded before the Dagster side moved to
`algo_platform.assets`, `algo_platform.jobs`, `algo_platform.resources` and
`algo_platform.definitions`. Only `algo_platform.pipeline.location` is kept, so their
`definitions.py` still loads; new projects import `algo_platform.definitions`."""
