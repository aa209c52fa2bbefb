"""What every other layer stands on, with no Dagster and no torch: the canonical event schema,
the platform settings, atomic writes, the storage layout, a project's calendar, and its
declaration (`project.yaml`) with its trainer hyper-parameters."""
