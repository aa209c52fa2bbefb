"""The Dagster side's jobs, schedules and sensors: a project's asset jobs (`project_jobs.py`), its
retraining schedule and landing-zone sensor (`automation.py`), and backfills (`backfill.py`)."""
