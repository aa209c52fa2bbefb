"""Users, their roles per project, sessions and the audit log, in the Dagster instance's database."""
