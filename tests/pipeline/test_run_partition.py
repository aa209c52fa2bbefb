"""A run with no day, or a day that is not a partition, stops at once with a message saying what to do."""

from pathlib import Path

import dagster as dg
import pytest

from algo_platform.definitions import build_project_definitions
from tests.support.factories import PROJECT


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({}, "has no partition: every job here processes one partition"),
        (
            {"dagster/partition": "2099-01-01"},
            f"{PROJECT}_ingest_job: 2099-01-01 is not a partition yet: days run from 2024-01-01 to",
        ),
    ],
)
def test_a_run_without_a_valid_day_fails_before_any_step_works(project, settings, tags, message):
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        assert not result.success
        failures = [e for e in result.all_events if e.is_failure]
        text = " ".join(str(e.event_specific_data) for e in failures)
        assert message in text
        assert "Cannot access partition_key" not in text
        assert not (Path(settings.layout.project(PROJECT).root) / "raw_events").exists()
