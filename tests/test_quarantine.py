"""Every kind of bad landing file: quarantined with a reason, the good rows of the day all load."""

import io
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from algo_platform.assets.events import cleaned_events, raw_events
from algo_platform.landing import landing_dir, quarantine_dir
from algo_platform.resources import build_resources

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
    "header only": ("header_only.csv", CSV_HEADER, "no_rows"),
    "malformed jsonl line": (
        "half_broken.jsonl",
        b'{"user_id": 1, "item_id": 2, "ts": "2026-11-20T01:00:00Z"}\n{"user_id": 2, "item_id": \n',
        "malformed_jsonl",
    ),
    "unsupported extension": ("events.xlsx", b"PK\x03\x04 spreadsheet", "unsupported_format"),
    # An invalid UTF-8 byte (Latin-1 é) inside a text column.
    "undecodable csv": ("latin1.csv", CSV_HEADER + b"caf\xe9,1,2,2026-11-20T01:00:00Z\n", "undecodable_bytes"),
}


def land(storage_root: str, name: str, data: bytes) -> Path:
    folder = Path(landing_dir(storage_root, DAY))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def ingest(settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_events, cleaned_events], partition_key=DAY, resources=build_resources(settings), raise_on_error=False
    )


def check(result: dg.ExecuteInProcessResult, name: str):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_quarantined_and_the_good_rows_still_load(kind, settings, storage_root):
    name, data, reason = BAD_FILES[kind]
    land(storage_root, "good.parquet", good_parquet())
    original = land(storage_root, name, data)

    result = ingest(settings)

    assert result.success
    assert sorted(result.output_for_node("cleaned_events")["user_id"]) == GOOD_USERS
    quarantined = Path(quarantine_dir(storage_root, DAY))
    assert (quarantined / name).read_bytes() == data
    why = json.loads((quarantined / f"{name}.reason.json").read_text())
    assert why["reason"] == reason and why["file"].endswith(name) and why["detail"] and why["time"]
    assert original.read_bytes() == data  # never modified or moved
    warning = check(result, "no_files_quarantined")
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN and name in warning.description


def test_the_same_content_uploaded_twice_is_loaded_once(settings, storage_root):
    land(storage_root, "good.parquet", good_parquet())
    land(storage_root, "good-retry.parquet", good_parquet())
    result = ingest(settings)
    assert sorted(result.output_for_node("raw_events")["user_id"].tolist()) == GOOD_USERS
    raw_meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.path == ["raw_events"])
    # Files load in name order; the later copy is the one skipped.
    assert raw_meta.materialization.metadata["duplicate_files_skipped"].value == [
        "good.parquet (same content as good-retry.parquet)"
    ]
    assert not Path(quarantine_dir(storage_root, DAY)).exists()


def test_another_days_file_in_the_wrong_folder_is_counted_not_mixed_in(settings, storage_root):
    day_users = list(range(1, 31))
    day_events = pd.DataFrame({"user_id": day_users, "item_id": 7, "ts": pd.Timestamp("2026-11-20T09:00Z")})
    land(storage_root, "day.csv", day_events.to_csv(index=False).encode())
    two_days_earlier = pd.DataFrame(
        {"user_id": [91, 92], "item_id": [5, 6], "ts": pd.to_datetime(["2026-11-18T10:00Z", "2026-11-18T11:00Z"])}
    )
    land(storage_root, "misplaced.csv", two_days_earlier.to_csv(index=False).encode())
    result = ingest(settings)
    assert sorted(result.output_for_node("cleaned_events")["user_id"]) == day_users
    cleaned_meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.path == ["cleaned_events"])
    assert cleaned_meta.materialization.metadata["dropped_outside_partition_day"].value == 2
    assert check(result, "quality_score_above_threshold").metadata["timeliness"].value == pytest.approx(30 / 32)


def test_ids_near_the_int64_limit_load_exactly(settings, storage_root):
    big = 9_223_372_036_854_775_806
    land(storage_root, "big_ids.csv", f"user_id,item_id,ts\n{big},{big - 1},2026-11-20T08:00:00Z\n".encode())
    result = ingest(settings)
    cleaned = result.output_for_node("cleaned_events")
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
    assert not (Path(settings.storage_root) / "assets" / "raw_events" / f"{DAY}.parquet").exists()
