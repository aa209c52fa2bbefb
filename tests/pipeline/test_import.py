"""`algo-platform import`: a history file split by event day into the landing zone."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from algo_platform.definitions import build_project_definitions
from algo_platform.ingest import importer
from algo_platform.ingest.importer import ImportRefused, import_events
from tests.support.factories import PROJECT, landed_day, make_project

MAPPING = {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}
RATING = {"rating": "float64"}


def ratings_csv(path: Path, rows: int, days: int, seed: int = 0, start: str = "2020-01-01") -> Path:
    """A ratings log in the shape of public ones: sorted by user, epoch seconds, explicit ratings."""
    rng = np.random.default_rng(seed)
    first = int(pd.Timestamp(start, tz="UTC").timestamp())
    ts = rng.integers(first, first + days * 86_400, rows)
    users = rng.integers(1, 300, rows)
    order = np.lexsort((ts, users))
    pd.DataFrame(
        {
            "userId": users[order],
            "movieId": rng.integers(1, 2_000, rows)[order],
            "rating": rng.choice([0.5, 1.0, 2.5, 3.0, 4.0, 5.0], rows)[order],
            "timestamp": ts[order],
        }
    ).to_csv(path, index=False)
    return path


def run_import(source: Path, root: str, mapping=MAPPING, **options) -> importer.ImportResult:
    return import_events(source, root, mapping, RATING, "2000-01-01", today=dt.date(2026, 11, 20), **options)


def landed_days(root: str) -> dict[str, list[str]]:
    events = Path(root) / "landing" / "events"
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(events.iterdir())}


def test_rows_land_on_their_utc_day_at_midnight_and_across_timezone_offsets(tmp_path, storage_root):
    source = tmp_path / "history.csv"
    source.write_text(
        "userId,movieId,rating,timestamp\n"
        "1,10,4.0,2024-03-01T23:59:59.999Z\n"
        "1,11,3.5,2024-03-02T00:00:00Z\n"
        "2,12,5.0,2024-03-01T20:30:00-05:00\n"  # 01:30 UTC on 2 March
        "2,13,1.0,2024-03-02T08:00:00+09:00\n"  # 23:00 UTC on 1 March
        "3,14,2.0,2024-03-04T12:00:00Z\n"
    )
    result = run_import(source, storage_root)
    assert result.rows_per_day == {"2024-03-01": 2, "2024-03-02": 2, "2024-03-04": 1}
    assert set(landed_days(storage_root)) == {"2024-03-01", "2024-03-02", "2024-03-04"}  # no folder for the 3rd
    first = landed_day(storage_root, "2024-03-01", RATING).table
    assert sorted(first["item_id"].to_pylist()) == [10, 13]
    assert sorted(first["rating"].to_pylist()) == [1.0, 4.0]  # the extra column travels with its row
    second = landed_day(storage_root, "2024-03-02", RATING).table
    assert sorted(second["item_id"].to_pylist()) == [11, 12]
    # Every landed row passes the day check the ingest applies: nothing would be dropped as misplaced.
    assert not landed_day(storage_root, "2024-03-02", RATING).quarantined


def test_importing_the_same_file_again_changes_nothing(tmp_path, storage_root):
    source = ratings_csv(tmp_path / "ratings.csv", 3_000, days=40)
    first = run_import(source, storage_root)
    files = {p: p.stat().st_mtime_ns for p in (Path(storage_root) / "landing").rglob("*.parquet")}
    again = run_import(source, storage_root)
    assert again.already_imported and again.import_id == first.import_id
    assert {p: p.stat().st_mtime_ns for p in (Path(storage_root) / "landing").rglob("*.parquet")} == files
    assert first.rows == 3_000 and len(files) == len(first.rows_per_day)


def test_the_same_bytes_with_another_mapping_are_a_new_import_that_replaces_the_first(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp,other\n1,10,4.0,1709251200,20\n2,11,3.0,1709337600,21\n")
    first = run_import(source, storage_root)
    second = run_import(source, storage_root, mapping={**MAPPING, "item_id": "other"})
    assert second.import_id != first.import_id and second.superseded == [first.import_id]
    day = landed_day(storage_root, "2024-03-01", RATING).table
    assert day["item_id"].to_pylist() == [20]  # the new mapping, not the first one
    quarantined = Path(storage_root) / "quarantine" / "events" / "2024-03-01"
    reason = json.loads(next(quarantined.glob("*.reason.json")).read_text())
    assert reason["reason"] == "superseded" and second.import_id in reason["detail"]  # kept, not deleted


def test_rows_without_a_timestamp_are_kept_in_quarantine(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp\n1,10,4.0,1709251200\n2,11,3.0,\n3,12,2.0,\n")
    result = run_import(source, storage_root)
    assert result.rows_per_day == {"2024-03-01": 1} and result.rows_without_time == 2
    assert pq.read_table(result.quarantined).num_rows == 2


def test_a_linked_quarantine_folder_refuses_the_import_before_anything_lands(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp\n1,10,4.0,1709251200\n2,11,3.0,\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (Path(storage_root) / "quarantine").mkdir(parents=True)
    (Path(storage_root) / "quarantine" / "imports").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ImportRefused, match=r"imports is a symbolic link.*nothing was landed"):
        run_import(source, storage_root)
    assert list(outside.iterdir()) == [] and not (Path(storage_root) / "landing").exists()


def test_history_before_the_partition_start_is_refused_with_the_setting_to_change(tmp_path, storage_root):
    source = ratings_csv(tmp_path / "ratings.csv", 100, days=10, start="1999-06-01")
    with pytest.raises(ImportRefused, match=r"set partitions_start: 1999-06-01 \(or earlier\) in project.yaml"):
        run_import(source, storage_root)
    assert not (Path(storage_root) / "landing").exists()


def test_a_bad_value_refuses_the_whole_import_and_names_the_rows(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp\n1,10,4.0,1709251200\n2,eleven,3.0,1709251300\n")
    with pytest.raises(ImportRefused, match=r"'item_id'.*rows 1..2.*nothing was imported"):
        run_import(source, storage_root)
    assert not (Path(storage_root) / "landing").exists()


def test_an_interrupted_import_finishes_when_run_again_without_duplicates(tmp_path, storage_root, monkeypatch):
    source = ratings_csv(tmp_path / "ratings.csv", 2_000, days=30)
    real_write, writes = importer.write_atomically, []

    def failing_write(target, data):
        writes.append(target)
        if len(writes) == 6:
            raise OSError("disk full")
        real_write(target, data)

    monkeypatch.setattr(importer, "write_atomically", failing_write)
    with pytest.raises(OSError):
        run_import(source, storage_root, memory_bytes=1 << 16)
    monkeypatch.setattr(importer, "write_atomically", real_write)
    result = run_import(source, storage_root, memory_bytes=1 << 16)
    assert not result.already_imported
    landed = sum(landed_day(storage_root, day, RATING).table.num_rows for day in result.rows_per_day)
    assert landed == 2_000 == result.rows


def _peak_rss_mib(source: Path, env: dict) -> float:
    script = (
        "import resource, sys\n"
        "from algo_platform.ingest.importer import import_events\n"
        f"import_events({str(source)!r}, sys.argv[1], {MAPPING!r}, {RATING!r}, '2000-01-01',\n"
        "              memory_bytes=4 << 20, batch_bytes=1 << 20)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(source.parent / f"storage-{source.stem}")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def test_memory_grows_far_less_than_the_file(tmp_path):
    """A file twenty times larger, read in batches and bucketed by day, adds less than half of its
    in-memory size to the peak (benchmarks/README.md has the figures at 1M, 10M and 30M rows)."""
    small = ratings_csv(tmp_path / "small.csv", 100_000, days=2_000)
    large = ratings_csv(tmp_path / "large.csv", 2_000_000, days=2_000)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    small_peak, large_peak = _peak_rss_mib(small, env), _peak_rss_mib(large, env)
    whole_file_in_arrow = pd.read_csv(large).memory_usage(deep=True).sum() / 2**20
    # Reading the large file whole would add its size; the import adds well under half of it.
    assert large_peak - small_peak < whole_file_in_arrow / 2, (small_peak, large_peak, whole_file_in_arrow)


def test_a_sparse_history_ingests_with_empty_days_and_trains(tmp_path, settings):
    """Days without ratings are empty partitions; a window over them trains (the movies protocol)."""
    project = make_project(
        window_days=6,
        start="2026-11-01",
        data={"extra_columns": RATING, "feedback": {"column": "rating", "threshold": 2.0}},
        training={"evaluation": "leave_last_out"},
        model={"family": "gru4rec", "epochs": 2},
    )
    rng = np.random.default_rng(3)
    days = ["2026-11-15", "2026-11-16", "2026-11-18", "2026-11-20"]  # the 17th and 19th have no events
    rows = [
        {"userId": u, "movieId": int(rng.integers(1, 60)), "rating": 4.0, "timestamp": f"{day}T{h:02d}:00:00Z"}
        for day in days
        for u in range(1, 41)
        for h in range(3)
    ]
    source = tmp_path / "ratings.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    root = settings.layout.project(PROJECT).root
    result = import_events(source, root, MAPPING, RATING, "2026-11-01", today=dt.date(2026, 11, 29))
    assert list(result.rows_per_day) == days

    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        for day in pd.date_range("2026-11-15", "2026-11-20").strftime("%Y-%m-%d"):
            ingest = defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(
                partition_key=day, instance=instance
            )
            assert ingest.success
        retrain = defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
            partition_key="2026-11-20", instance=instance
        )
    assert retrain.success
    sequences = next(
        e.materialization.metadata
        for e in retrain.get_asset_materialization_events()
        if e.asset_key.path[-1] == "training_sequences"
    )
    assert sequences["history_items"].value + sequences["holdout_items"].value == len(rows)


def test_the_cli_prints_days_rows_and_the_backfill_command(tmp_path, storage_root, projects_dir):
    from click.testing import CliRunner

    from algo_platform.cli import main as cli

    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating,timestamp,comment\n1,10,4.0,1709251200,ok\n2,11,3.0,1709510400,fine\n")
    mapping = ["--map", "user_id=userId", "--map", "item_id=movieId", "--map", "ts=timestamp"]
    result = CliRunner().invoke(cli, ["import", str(source), "--project", PROJECT, *mapping])
    assert result.exit_code == 0, result.output
    assert "imported 2 rows on 2 days (2024-03-01..2024-03-04)" in result.output
    assert "2024-03-01           1 rows" in result.output and "2024-03-04           1 rows" in result.output
    assert "comment" in result.output and "rating" in result.output  # not declared by this project: said so
    assert f"algo-platform backfill --project {PROJECT} --from 2024-03-01 --to 2024-03-04" in result.output
    again = CliRunner().invoke(cli, ["import", str(source), "--project", PROJECT, *mapping])
    assert "already imported with this mapping" in again.output


def test_a_dry_run_says_the_import_would_refuse_a_cut_last_line(tmp_path, storage_root, projects_dir):
    """A file cut mid-row: its last timestamp lost digits and dates the row 1970. The dry run must
    not pass what the import refuses; both name the rows and the likely cause."""
    from click.testing import CliRunner

    from algo_platform.cli import main as cli

    source = tmp_path / "partial.csv"
    source.write_text("userId,movieId,rating,timestamp\n1,10,4.0,1709251200\n2,11,3.0,1709510400\n455,1160,4,879108\n")
    mapping = ["--map", "user_id=userId", "--map", "item_id=movieId", "--map", "ts=timestamp"]
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(cli, ["import", str(source), "--project", PROJECT, *mapping, *extra])
        assert result.exit_code == 1, result.output
        assert "partial.csv: 1 row(s) dated before the first partition, from 1970-01-11 to 1970-01-11" in result.output
        assert "a cut last line" in result.output
    assert not (Path(storage_root) / "landing").exists()


def ingest_range(defs, instance, first: str, last: str, **options) -> dg.ExecuteInProcessResult:
    """One run over a range of days, as a backfill with data.days_per_run launches it."""
    return defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        **options,
    )


def test_one_run_ingests_a_range_of_days_each_stored_described_and_checked_as_a_day(tmp_path, settings):
    project = make_project(start="2024-01-01", data={"extra_columns": RATING, "days_per_run": 30})
    source = tmp_path / "ratings.csv"
    source.write_text(
        "userId,movieId,rating,timestamp\n"
        + "".join(f"{u},{10 + u},4.0,2024-03-0{d}T1{u}:00:00Z\n" for d in (1, 2, 4) for u in range(1, 6))
    )
    root = settings.layout.project(PROJECT).root
    import_events(source, root, MAPPING, RATING, "2024-01-01", today=dt.date(2026, 11, 20))
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        result = ingest_range(defs, instance, "2024-03-01", "2024-03-04")
        assert result.success
        rows = {
            (e.asset_key.path[-1], e.materialization.partition): e.materialization.metadata["dagster/row_count"].value
            for e in result.get_asset_materialization_events()
        }
        assert {
            day: rows[("cleaned_events", day)] for day in ("2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04")
        } == {
            "2024-03-01": 5,
            "2024-03-02": 5,
            "2024-03-03": 0,  # no events: an empty day, not an error
            "2024-03-04": 5,
        }
        assert rows[("item_features", "2024-03-02")] == 5
        checks = [(c.check_name, c.partition, c.passed) for c in result.get_asset_check_evaluations()]
        assert ("cleaned_events_suite", "2024-03-03", True) in checks
        assert ("quality_score_above_threshold", "2024-03-04", True) in checks
        status = instance.get_status_by_partition(
            dg.AssetKey([PROJECT, "item_features"]),
            ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"],
            defs.resolve_assets_def(dg.AssetKey([PROJECT, "item_features"])).partitions_def,
        )
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    assert (Path(root) / "cleaned_events" / "2024-03-03.parquet").exists()


def test_a_bad_day_in_a_range_fails_its_checks_by_name_and_blocks_the_range(tmp_path, settings):
    project = make_project(start="2024-01-01", data={"days_per_run": 30})
    root = Path(settings.layout.project(PROJECT).root)
    for day, user in (("2024-03-01", "1"), ("2024-03-02", "-1")):  # the 2nd: every user id invalid
        folder = root / "landing" / "events" / day
        folder.mkdir(parents=True)
        (folder / "e.csv").write_text(f"user_id,item_id,ts\n{user},5,{day}T10:00:00Z\n{user},6,{day}T11:00:00Z\n")
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        result = ingest_range(defs, instance, "2024-03-01", "2024-03-02", raise_on_error=False)
    assert not result.success
    gate = {(c.partition, c.passed) for c in result.get_asset_check_evaluations() if c.check_name.startswith("quality")}
    assert gate == {("2024-03-01", True), ("2024-03-02", False), (None, False)}
    summary = next(
        c for c in result.get_asset_check_evaluations() if c.check_name.startswith("quality") and not c.partition
    )
    assert summary.description.startswith("failed on 2024-03-02")
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "cleaned_events"]


def test_the_backfill_command_queues_one_asset_backfill_over_the_range(tmp_path, projects_dir, monkeypatch):
    from click.testing import CliRunner

    from algo_platform.cli import main as cli

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    result = CliRunner().invoke(cli, ["backfill", "--project", PROJECT, "--from", "2024-03-01", "--to", "2024-04-09"])
    assert result.exit_code == 0, result.output
    assert "ingest of 40 days (2024-03-01..2024-04-09), up to 1 per run (40 runs)" in result.output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (backfill,) = instance.get_backfills()
        targeted = backfill.asset_backfill_data.target_subset
        assert {k.path[-1] for k in targeted.asset_keys} == {
            "raw_events",
            "cleaned_events",
            "data_profile",
            "user_features",
            "item_features",
        }
        assert targeted.num_partitions_and_non_partitioned_assets == 5 * 40
        assert backfill.tags["algo_platform/project"] == PROJECT
        assert backfill.tags["user"].startswith("shell:")  # who queued it: its runs carry the tag too
    # The audit log has it, under the operating-system user who ran the command.
    logged = CliRunner().invoke(cli, ["audit", "--project", PROJECT, "--json"])
    (entry,) = [json.loads(line) for line in logged.output.splitlines()]
    assert (entry["action"], entry["outcome"], entry["detail"]) == (
        "backfill",
        "allowed",
        "2024-03-01..2024-04-09: 40 days",
    )
    refused = CliRunner().invoke(cli, ["backfill", "--project", PROJECT, "--from", "1990-01-01", "--to", "2024-01-05"])
    assert refused.exit_code == 1 and "team_a: 1990-01-01 is before the first partition (2024-01-01)" in refused.output


def test_an_import_never_writes_through_a_linked_day_folder(tmp_path, storage_root):
    source = ratings_csv(tmp_path / "ratings.csv", 500, days=5, start="2024-03-01")
    outside = tmp_path / "outside"
    outside.mkdir()
    events = Path(storage_root) / "landing" / "events"
    events.mkdir(parents=True)
    (events / "2024-03-03").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ImportRefused, match=r"2024-03-03 is a symbolic link.*nothing was landed"):
        run_import(source, storage_root)
    assert list(outside.iterdir()) == [] and [p.name for p in events.iterdir()] == ["2024-03-03"]


def test_a_compressed_history_that_expands_like_a_bomb_is_refused_before_it_lands(tmp_path, storage_root):
    import gzip

    row = b"1,10,4.0,1600000000\n"
    bomb = tmp_path / "ratings.csv.gz"
    bomb.write_bytes(gzip.compress(b"userId,movieId,rating,timestamp\n" + row * 3_000_000, compresslevel=9))
    with pytest.raises(ImportRefused, match="ratings.csv.gz: expands to more than 200 times"):
        run_import(bomb, storage_root)
    assert not (Path(storage_root) / "landing" / "events").exists()
    genuine = tmp_path / "genuine.csv.gz"  # a real export's ratio imports as before
    genuine.write_bytes(gzip.compress(ratings_csv(tmp_path / "genuine.csv", rows=20_000, days=30).read_bytes()))
    assert run_import(genuine, storage_root).rows == 20_000


def test_days_per_run_auto_sizes_a_backfill_from_what_the_import_recorded(tmp_path):
    from algo_platform.core.settings import Settings
    from algo_platform.ingest.backfill_size import ROWS_PER_RUN, partitions_per_run

    # 22 years of a sparse ratings log, month partitions: the new team, with no edit.
    project = make_project(start="1996-01-01", data={"partition": "month", "extra_columns": RATING})
    settings = Settings(env="local", storage_root=str(tmp_path / "storage"))
    root = settings.layout.project(PROJECT).root
    assert project.data.days_per_run == "auto"
    assert partitions_per_run(project, root).partitions == 1  # nothing imported yet: days land one at a time
    source = ratings_csv(tmp_path / "ratings.csv", rows=4000, days=22 * 365, start="1996-03-29")
    import_events(source, root, MAPPING, RATING, "1996-01-01", today=dt.date(2026, 12, 1))
    size = partitions_per_run(project, root)
    # 4,000 rows are far below a run's rows: the 265 months go in two runs, one per queue slot.
    assert size.partitions == 133 and "4,000 rows in" in size.why and "of 265 months" in size.why
    defs = build_project_definitions(project, settings)
    policy = defs.resolve_assets_def(dg.AssetKey([PROJECT, "cleaned_events"])).backfill_policy
    assert policy.max_partitions_per_run == 133
    # A log of large months: each run holds about ROWS_PER_RUN rows (here four months of a quarter each).
    heavy = tmp_path / "heavy"
    (heavy / "imports").mkdir(parents=True)
    days = {"1996-03-29": ROWS_PER_RUN // 4, "1996-04-29": ROWS_PER_RUN // 4, "2018-01-01": ROWS_PER_RUN // 4}
    manifest = {"import_id": "heavy", "status": "complete", "rows_per_day": days}
    (heavy / "imports" / "heavy.json").write_text(json.dumps(manifest))
    assert partitions_per_run(project, str(heavy)).partitions == 4
    spark = make_project(start="1996-01-01", data={"engine": "spark"})
    assert partitions_per_run(spark, root).partitions == 1


def test_rows_dated_after_today_are_refused_and_nothing_lands(tmp_path, storage_root):
    # Milliseconds read as seconds put a log tens of thousands of years ahead; here two rows are
    # simply a day after "today" (2026-11-20).
    source = tmp_path / "history.csv"
    source.write_text(
        "userId,movieId,rating,timestamp\n"
        "1,10,4.0,2026-11-19T10:00:00Z\n"
        "1,11,3.5,2026-11-21T00:00:00Z\n"
        "2,12,5.0,2026-11-21T09:00:00Z\n"
    )
    with pytest.raises(ImportRefused) as refused:
        run_import(source, storage_root)
    message = str(refused.value)
    assert "history.csv: 2 rows are dated after today (2026-11-20 UTC), up to 2026-11-21" in message
    assert "seconds or milliseconds" in message and "nothing was imported" in message
    assert not (Path(storage_root) / "landing" / "events").exists() or landed_days(storage_root) == {}


def test_a_missing_column_is_named_with_the_files_own_columns(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,rating\n1,10,4.0\n")
    with pytest.raises(ImportRefused) as refused:
        run_import(source, storage_root)
    assert "mapped source column(s) ['timestamp'] not in file (columns: userId, movieId, rating)" in str(refused.value)
