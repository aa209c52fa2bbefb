import datetime as dt
import subprocess
import sys

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from algo_platform.quality.contracts import cleaned_events_rules, raw_events_rules
from algo_platform.quality.dimensions import population_stability_index, quality_dimensions
from algo_platform.resources.data_quality import DataQuality, suite_check_result
from tests.support.factories import END_DAY, PROJECT, make_events, make_project

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
NOON = pd.Timestamp(END_DAY, tz="UTC") + pd.Timedelta(hours=12)


def test_quality_score_on_a_hand_made_frame_with_known_defects():
    events = make_events(
        [
            {},  # 6 clean rows
            {},
            {},
            {},
            {},
            {},
            {"user_id": pd.NA},  # completeness: 1 of 30 required fields missing
            {"watch_ms": -1},  # accuracy
            {"event_type": "clickk"},  # relevance
            {"ts": NOON + pd.Timedelta(days=400)},  # timeliness: future
        ]
    )
    dims = quality_dimensions(events, END_DAY, NOW, allowed_lateness=dt.timedelta(hours=1))
    assert dims["completeness"] == pytest.approx(29 / 30)
    assert dims["accuracy"] == pytest.approx(9 / 10)
    assert dims["relevance"] == pytest.approx(9 / 10)
    assert dims["timeliness"] == pytest.approx(9 / 10)
    assert dims["quality_score"] == pytest.approx(29 / 30 * 0.9 * 0.9 * 0.9)


def test_late_arrivals_within_the_allowed_lateness_are_timely():
    events = make_events([{"ts": pd.Timestamp(END_DAY, tz="UTC") - pd.Timedelta(minutes=30)}, {}])
    assert quality_dimensions(events, END_DAY, NOW, dt.timedelta(hours=1))["timeliness"] == 1.0
    assert quality_dimensions(events, END_DAY, NOW, dt.timedelta(minutes=10))["timeliness"] == 0.5


def test_cleaned_suite_reports_each_broken_rule_as_a_blocking_error_with_examples():
    broken = make_events([{"event_id": "dup"}, {"event_id": "dup", "watch_ms": -7, "event_type": "clickk"}])
    broken = broken.astype({"user_id": "int64", "item_id": "int64"})
    outcomes = DataQuality().validate(broken, cleaned_events_rules(END_DAY), "cleaned")
    failed = {o.rule.describe(): o for o in outcomes if not o.passed}
    assert set(failed) == {
        "ExpectColumnValuesToBeUnique(event_id)",
        "ExpectColumnValuesToBeInSet(event_type)",
        "ExpectColumnValuesToBeBetween(watch_ms)",
    }
    assert failed["ExpectColumnValuesToBeBetween(watch_ms)"].examples == [-7]
    assert failed["ExpectColumnValuesToBeInSet(event_type)"].unexpected_count == 1
    result = suite_check_result(outcomes, "cleaned")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["failed_hard_rules"].value == 3


@pytest.mark.parametrize("suite", ["raw", "cleaned"])
def test_a_day_validated_in_parts_gets_the_outcomes_of_the_whole_day(suite, tmp_path):
    """A day too large for one pandas frame is validated in parts and the counts added up: the same
    outcome per rule, even for ids repeated across parts and for rules with a tolerated share."""
    rng = np.random.default_rng(5)
    rows = [
        {
            "event_id": f"e{rng.integers(0, 900)}",  # about 100 ids repeated, anywhere in the day
            "watch_ms": [5_000, -7, pd.NA][rng.choice(3, p=[0.99, 0.005, 0.005])],
            "event_type": ["play", "clickk"][rng.choice(2, p=[0.99, 0.01])],
            "user_id": [1, pd.NA][rng.choice(2, p=[0.99, 0.01])] if suite == "raw" else 1,
        }
        for _ in range(1_000)
    ]
    frame = make_events(rows)
    rules = raw_events_rules() if suite == "raw" else cleaned_events_rules(END_DAY)
    if suite == "cleaned":
        frame = frame.drop(columns="source_file").astype({"user_id": "int64", "item_id": "int64"})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "day.parquet")

    whole = DataQuality().validate(frame, rules, suite)
    parts = DataQuality().validate_file(tmp_path / "day.parquet", rules, suite, rows_per_part=150)

    assert [o.passed for o in parts] == [o.passed for o in whole]
    assert [o.unexpected_count for o in parts] == [o.unexpected_count for o in whole]
    for part, one in zip(parts, whole, strict=True):
        assert part.unexpected_percent == pytest.approx(one.unexpected_percent)
    assert not all(o.passed for o in whole)
    if suite == "cleaned":  # a tolerated share: under 1% of watch times missing passes, and so in parts
        assert any(o.passed for o in whole if o.unexpected_count)


def test_raw_suite_defects_are_soft_warnings_not_errors():
    raw = make_events([{}, {"user_id": pd.NA}, {"event_type": "clickk"}])
    result = suite_check_result(DataQuality().validate(raw, raw_events_rules(), "raw"), "raw")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["failed_soft_rules"].value == 2 and result.metadata["failed_hard_rules"].value == 0


def test_population_stability_index():
    day = {"play": 0.7, "like": 0.2, "skip": 0.1}
    assert population_stability_index(day, day) == 0.0
    assert population_stability_index(day, {"play": 0.68, "like": 0.21, "skip": 0.11}) < 0.01
    assert population_stability_index(day, {"play": 0.3, "like": 0.2, "skip": 0.5}) > 0.2


def test_a_failing_blocking_check_stops_training_in_the_same_run(settings):
    """Six clean days are ingested; the seventh is mostly defects. One run that includes raw
    events through the model must stop at the quality gate: no cleaned events, no sequences,
    no model for that day."""
    storage = settings.layout.project(PROJECT).root
    generate(storage, days=6, events_per_day=600, seed=3, end_date=END_DAY - dt.timedelta(days=1))
    generate(storage, days=1, events_per_day=600, seed=3, defect_rate=0.6, end_date=END_DAY)
    defs = build_project_definitions(make_project(), settings)
    day = END_DAY.isoformat()
    ingest_job = f"{PROJECT}_ingest_job"
    through_model = dg.define_asset_job(
        "through_model",
        selection=dg.AssetSelection.assets([PROJECT, "raw_events"]).downstream()
        - dg.AssetSelection.assets(
            *([PROJECT, name] for name in ("evaluation_report", "user_features", "item_features"))
        ),
        partitions_def=defs.resolve_job_def(ingest_job).partitions_def,
    )
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[through_model]))
    with dg.instance_for_test() as instance:
        for offset in range(6, 0, -1):
            previous = (END_DAY - dt.timedelta(days=offset)).isoformat()
            assert (
                defs.resolve_job_def(ingest_job).execute_in_process(partition_key=previous, instance=instance).success
            )
        result = defs.resolve_job_def("through_model").execute_in_process(
            partition_key=day, instance=instance, raise_on_error=False
        )
        gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "quality_score_above_threshold")
        assert not gate.passed and gate.metadata["quality_score"].value < 0.9
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialized <= {f"{PROJECT}/raw_events"}
        for asset in ("cleaned_events", "training_sequences", "item_vocabulary", "sequence_model"):
            assert day not in instance.get_materialized_partitions(dg.AssetKey([PROJECT, asset])), asset


def test_suites_run_in_a_process_whose_main_has_no_file():
    """Dagster's run workers and `python -c` children have a __main__ without a file; with pyspark
    installed, GX's import of Spark Connect used to exit such a process (status 0, no error)."""
    script = (
        "import pandas as pd\n"
        "from algo_platform.quality.contracts import hard\n"
        "from algo_platform.resources.data_quality import DataQuality\n"
        "rule = hard('ExpectColumnValuesToNotBeNull', column='a')\n"
        "print('validated', DataQuality().validate(pd.DataFrame({'a': [1, None]}), [rule], 's')[0].passed)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "validated False" in done.stdout, done.stderr[-2000:]


def test_rules_fit_the_columns_a_project_has():
    """A ratings log has no watch time: its rules are not checked (and said so), while a declared
    extra column gets rules from its type: an infinite rating blocks, a missing one warns."""
    ratings = make_events([{"watch_ms": None, "item_duration_ms": None} for _ in range(4)])
    ratings = ratings.astype({"user_id": "int64", "item_id": "int64", "watch_ms": "Int64", "item_duration_ms": "Int64"})
    ratings["rating"] = [4.0, 3.5, np.inf, None]
    outcomes = DataQuality().validate(ratings, cleaned_events_rules(END_DAY, extra_columns={"rating": "float64"}), "c")
    result = suite_check_result(outcomes, "cleaned")
    assert "not checked (the data has no item_duration_ms, watch_ms)" in result.description
    failed = {o.rule.describe(): o.rule.hard for o in outcomes if not o.passed}
    assert failed == {"ExpectColumnValuesToBeBetween(rating)": True, "ExpectColumnValuesToNotBeNull(rating)": False}
    assert result.metadata["columns_not_supplied"].value == 2
