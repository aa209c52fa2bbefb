"""Every kind of bad landing file: quarantined with a reason, the good rows of the day all load."""

import gzip
import io
import json
import os
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from algo_platform.assets.events import build_ingest_assets
from algo_platform.core.layout import ProjectLayout
from algo_platform.ingest.quarantine import quarantine_name
from algo_platform.resources.environment import build_resources
from tests.support.factories import PROJECT, make_project, project_assets

DAY = "2026-11-20"
NOON_MS = 1_795_176_000_000  # 2026-11-20 12:00 UTC
GOOD_USERS = [11, 12, 13]


def good_parquet() -> bytes:
    table = pa.table(
        {
            "event_id": ["g1", "g2", "g3"],
            "user_id": GOOD_USERS,
            "item_id": [101, 102, 103],
            "event_type": ["play", "like", "play"],
            "watch_ms": [1000, 2000, 3000],
            "item_duration_ms": [4000, 4000, 4000],
            "ts": pa.array([NOON_MS, NOON_MS + 1, NOON_MS + 2], pa.timestamp("ms", tz="UTC")),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


CSV_HEADER = b"event_id,user_id,item_id,ts\n"
BAD_FILES = {
    "truncated parquet": ("broken.parquet", good_parquet()[:-30], "corrupt_parquet"),
    "not parquet at all": ("noise.parquet", b"PAR1 this is not a parquet file", "corrupt_parquet"),
    "csv missing a required column": ("no_item.csv", b"user_id,ts\n1,2026-11-20T01:00:00Z\n", "missing_column"),
    "jsonl missing a required column": (
        "no_user.jsonl",
        b'{"item_id": 1, "ts": "2026-11-20T01:00:00Z"}\n',
        "missing_column",
    ),
    "text in a numeric id column": ("text_ids.csv", CSV_HEADER + b"x1,abc,2,2026-11-20T01:00:00Z\n", "wrong_type"),
    "empty file": ("empty.csv", b"", "empty_file"),
    "malformed jsonl line": (
        "half_broken.jsonl",
        b'{"user_id": 1, "item_id": 2, "ts": "2026-11-20T01:00:00Z"}\n{"user_id": 2, "item_id": \n',
        "malformed_jsonl",
    ),
    "unsupported extension": ("events.xlsx", b"PK\x03\x04 spreadsheet", "unsupported_format"),
    # An invalid UTF-8 byte (Latin-1 é) inside a text column.
    "undecodable csv": ("latin1.csv", CSV_HEADER + b"caf\xe9,1,2,2026-11-20T01:00:00Z\n", "undecodable_bytes"),
    "duplicate column names": (
        "twice.csv",
        b"user_id,item_id,ts,ts\n1,2,2026-11-20T01:00:00Z,x\n",
        "duplicate_columns",
    ),
    "truncated gzip": (
        "cut.csv.gz",
        gzip.compress(CSV_HEADER + b"e,1,2,2026-11-20T01:00:00Z\n" * 50)[:40],
        "corrupt_compressed",
    ),
    "rows of another day": ("wrong_day.csv", b"user_id,item_id,ts\n1,2,2026-11-17T01:00:00Z\n", "misplaced"),
    "file name past the length limit": ("e" * 240 + ".csv", b"user_id,ts\n1,2026-11-20T01:00:00Z\n", "missing_column"),
}


def land(storage_root: str, name: str, data: bytes) -> Path:
    folder = Path(ProjectLayout(storage_root).landing_day(DAY))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def arrived_later(path: Path, seconds: int = 5) -> Path:
    """Make `path` count as arriving after files landed just before it (clocks tick coarsely)."""
    later = time.time() + seconds
    os.utime(path, (later, later))
    return path


def ingest(settings, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    project = make_project()
    return dg.materialize(
        project_assets(project, build_ingest_assets),
        partition_key=DAY,
        resources=build_resources(settings, project),
        raise_on_error=instance is not None,
        instance=instance,
    )


def stored(settings, asset: str) -> pd.DataFrame:
    """The day's table as the platform stored it (what the next step and an analyst read)."""
    return pd.read_parquet(Path(settings.layout.project(PROJECT).root) / asset / f"{DAY}.parquet")


def check(result: dg.ExecuteInProcessResult, name: str):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_quarantined_and_the_good_rows_still_load(kind, settings, storage_root):
    name, data, reason = BAD_FILES[kind]
    land(storage_root, "good.parquet", good_parquet())
    original = land(storage_root, name, data)

    result = ingest(settings)

    assert result.success
    assert sorted(stored(settings, "cleaned_events")["user_id"]) == GOOD_USERS
    quarantined = Path(ProjectLayout(storage_root).quarantine_day(DAY))
    kept_as = quarantine_name(name)
    assert (quarantined / kept_as).read_bytes() == data
    why = json.loads((quarantined / f"{kept_as}.reason.json").read_text())
    assert why["reason"] == reason and why["file"].endswith(name) and why["detail"] and why["time"]
    assert original.read_bytes() == data  # never modified or moved
    warning = check(result, "no_files_quarantined")
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN and name in warning.description


def test_a_header_only_file_is_a_file_without_events_not_a_bad_one(settings, storage_root):
    land(storage_root, "good.parquet", good_parquet())
    land(storage_root, "quiet_hour.csv", CSV_HEADER)
    result = ingest(settings)
    assert result.success and check(result, "no_files_quarantined").passed
    assert sorted(stored(settings, "cleaned_events")["user_id"]) == GOOD_USERS
    assert not Path(ProjectLayout(storage_root).quarantine_day(DAY)).exists()


def test_the_same_content_uploaded_twice_is_loaded_once(settings, storage_root):
    land(storage_root, "good.parquet", good_parquet())
    arrived_later(land(storage_root, "good-retry.parquet", good_parquet()))
    result = ingest(settings)
    assert sorted(stored(settings, "raw_events")["user_id"].tolist()) == GOOD_USERS
    raw_meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "raw_events")
    # Files load in arrival order; the later copy is the one skipped, whatever the names.
    assert raw_meta.materialization.metadata["duplicate_files_skipped"].value == [
        "good-retry.parquet (same content as good.parquet)"
    ]
    assert not Path(ProjectLayout(storage_root).quarantine_day(DAY)).exists()


def test_a_file_of_another_day_is_quarantined_as_misplaced_and_the_day_scores_on_the_rest(settings, storage_root):
    day_users = list(range(1, 3001))
    day_events = pd.DataFrame({"user_id": day_users, "item_id": 7, "ts": pd.Timestamp("2026-11-20T09:00Z")})
    land(storage_root, "day.csv", day_events.to_csv(index=False).encode())
    other_day = pd.DataFrame({"user_id": range(5001, 5501), "item_id": 5, "ts": pd.Timestamp("2026-11-18T10:00Z")})
    land(storage_root, "misplaced.csv", other_day.to_csv(index=False).encode())
    straddling = pd.DataFrame(
        {"user_id": [91, 92], "item_id": [5, 6], "ts": pd.to_datetime(["2026-11-19T23:59Z", "2026-11-20T00:01Z"])}
    )
    land(storage_root, "straddling.csv", straddling.to_csv(index=False).encode())

    result = ingest(settings)

    assert result.success
    assert sorted(stored(settings, "cleaned_events")["user_id"]) == [*day_users[:91], 92, *day_users[91:]]
    why = json.loads((Path(ProjectLayout(storage_root).quarantine_day(DAY)) / "misplaced.csv.reason.json").read_text())
    assert why["reason"] == "misplaced"
    assert "2026-11-18: 500 rows" in why["detail"] and "--date 2026-11-18" in why["detail"]
    # A file with rows on both sides of midnight is this day's: its other-day row is counted and dropped.
    cleaned_meta = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "cleaned_events"
    )
    assert cleaned_meta.materialization.metadata["dropped_outside_partition_day"].value == 1
    assert check(result, "quality_score_above_threshold").passed


def test_ids_near_the_int64_limit_load_exactly(settings, storage_root):
    big = 9_223_372_036_854_775_806
    land(storage_root, "big_ids.csv", f"user_id,item_id,ts\n{big},{big - 1},2026-11-20T08:00:00Z\n".encode())
    assert ingest(settings).success
    cleaned = stored(settings, "cleaned_events")
    assert cleaned["user_id"].tolist() == [big] and cleaned["item_id"].tolist() == [big - 1]
    assert cleaned["user_id"].dtype == "int64"


def test_a_day_whose_files_are_all_bad_fails_with_a_clear_message(settings, storage_root):
    land(storage_root, "empty.csv", b"")
    land(storage_root, "broken.parquet", b"PAR1 nope")
    result = ingest(settings)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "every landing file was quarantined" in failure
    assert "empty.csv" in failure and "broken.parquet" in failure
    assert not (Path(settings.layout.project(PROJECT).root) / "raw_events" / f"{DAY}.parquet").exists()


SECRET = "root:$y$j9T$not-a-real-hash:19000:0:99999:7:::"


def test_a_link_is_quarantined_as_a_link_and_its_target_is_never_read_or_shown(settings, storage_root, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    land(storage_root, "good.parquet", good_parquet())
    link = Path(ProjectLayout(storage_root).landing_day(DAY)) / "innocent.csv"
    link.symlink_to(secret)

    result = ingest(settings)

    assert result.success
    assert sorted(stored(settings, "cleaned_events")["user_id"]) == GOOD_USERS
    quarantined = Path(ProjectLayout(storage_root).quarantine_day(DAY))
    assert not (quarantined / "innocent.csv").exists()  # nothing copied through the link
    assert json.loads((quarantined / "innocent.csv.reason.json").read_text())["reason"] == "symlink"
    shown = " ".join(str(e) for e in result.all_events) + (quarantined / "innocent.csv.reason.json").read_text()
    assert "root:" not in shown and "not-a-real-hash" not in shown


def test_a_link_planted_in_quarantine_is_replaced_not_written_through(settings, storage_root, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    quarantined = Path(ProjectLayout(storage_root).quarantine_day(DAY))
    quarantined.mkdir(parents=True)
    (quarantined / "empty.csv").symlink_to(victim)
    land(storage_root, "good.parquet", good_parquet())
    land(storage_root, "empty.csv", b"")
    assert ingest(settings).success
    assert victim.read_text() == "keep me"
    assert not (quarantined / "empty.csv").is_symlink()


@pytest.mark.parametrize("linked", ["quarantine", "day"])
def test_a_linked_quarantine_folder_is_never_written_through(settings, storage_root, tmp_path, linked):
    outside = tmp_path / "outside"
    outside.mkdir()
    day_folder = Path(ProjectLayout(storage_root).quarantine_day(DAY))
    link = day_folder.parents[1] if linked == "quarantine" else day_folder
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    land(storage_root, "good.parquet", good_parquet())
    land(storage_root, "empty.csv", b"")
    result = ingest(settings)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert f"{link} is a symbolic link" in str(failure)
    assert list(outside.rglob("*")) == []  # nothing written outside the storage root


def test_a_csv_parse_error_names_the_defect_without_quoting_the_row(settings, storage_root):
    land(storage_root, "good.parquet", good_parquet())
    land(storage_root, "ragged.csv", b"user_id,item_id,ts\n1,2,2026-11-20T01:00:00Z\n" + SECRET.encode() + b"\n")
    result = ingest(settings)
    assert result.success
    detail = json.loads((Path(ProjectLayout(storage_root).quarantine_day(DAY)) / "ragged.csv.reason.json").read_text())[
        "detail"
    ]
    assert "Expected 3 columns, got 1" in detail
    assert "not-a-real-hash" not in detail and "not-a-real-hash" not in " ".join(str(e) for e in result.all_events)


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("semicolons.csv", lambda text: text.replace(",", ";").encode()),
        ("tabs.csv", lambda text: text.replace(",", "\t").encode()),
        ("compressed.csv.gz", lambda text: gzip.compress(text.encode())),
        (
            "compressed.jsonl.gz",
            lambda text: gzip.compress(pd.read_csv(io.StringIO(text)).to_json(orient="records", lines=True).encode()),
        ),
    ],
)
def test_common_exports_load_semicolon_tab_and_compressed(name, encode, settings, storage_root):
    text = "user_id,item_id,ts\n21,201,2026-11-20T01:00:00Z\n22,202,2026-11-20T02:00:00Z\n"
    land(storage_root, name, encode(text))
    result = ingest(settings)
    assert result.success
    assert sorted(stored(settings, "cleaned_events")["user_id"]) == [21, 22]


def test_every_check_result_of_a_day_is_stored_with_its_day(settings, storage_root):
    land(storage_root, "good.parquet", good_parquet())
    with dg.instance_for_test() as instance:
        result = ingest(settings, instance)
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} >= {"quality_score_above_threshold", "no_files_quarantined"}
        assert {e.partition for e in evaluations} == {DAY}
        key = dg.AssetCheckKey(dg.AssetKey([PROJECT, "raw_events"]), "quality_score_above_threshold")
        stored = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert stored[0].partition == DAY


def test_a_file_that_changes_while_it_is_read_fails_the_run_and_says_why(settings, storage_root, monkeypatch):
    growing = land(storage_root, "growing.csv", b"user_id,item_id,ts\n1,2,2026-11-20T01:00:00Z\n")
    read = type(growing).read_bytes

    def read_while_a_writer_appends(path):
        data = read(path)
        with open(growing, "ab") as file:
            file.write(b"2,3,2026-11-20T02:00:00Z\n")
        os.utime(growing, ns=(time.time_ns() + 10**9,) * 2)
        return data

    monkeypatch.setattr(type(growing), "read_bytes", read_while_a_writer_appends)
    result = ingest(settings)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "growing.csv changed while it was being read" in failure
