"""The web entry points the project ships: the Dagster UI behind a guard against cross-site writes."""
