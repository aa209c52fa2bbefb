import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from algo_platform.cli import main as cli
from algo_platform.core.layout import ProjectLayout
from algo_platform.ingest.canonical import parse_column_mapping
from algo_platform.ingest.upload import UploadError, upload_event_file
from tests.support.factories import PROJECT, landed_day

DAY = "2026-11-20"


def write_ratings_csv(path: Path, rows: int = 5) -> Path:
    """A MovieLens-style ratings log: other column names, epoch-second timestamps."""
    base = 1_795_176_000  # 2026-11-20 12:00:00 UTC
    frame = pd.DataFrame(
        {
            "userId": range(1, rows + 1),
            "movieId": range(10, 10 + rows),
            "rating": 4.0,
            "timestamp": base + pd.RangeIndex(rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


def landed_names(storage_root: str) -> list[str]:
    folder = ProjectLayout(storage_root).landing_day(DAY)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_upload_with_column_mapping_lands_file_and_raw_load_maps_it(tmp_path, storage_root):
    source = write_ratings_csv(tmp_path / "ratings.csv")
    result = upload_event_file(
        source, DAY, {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}, storage_root
    )
    assert result.rows == 5 and result.rows_outside_day == 0 and not result.already_present
    assert landed_names(storage_root) == ["ratings.csv", "ratings.csv.columns.json"]
    assert (ProjectLayout(storage_root).landing_day(DAY) / "ratings.csv").read_bytes() == source.read_bytes()

    load = landed_day(storage_root, DAY)
    frame = load.table.to_pandas()
    assert frame["user_id"].tolist() == [1, 2, 3, 4, 5]
    assert frame["item_id"].tolist() == [10, 11, 12, 13, 14]
    assert str(frame["ts"].iloc[0]) == "2026-11-20 12:00:00+00:00"
    assert frame["event_id"].is_unique


def test_upload_missing_required_column_names_file_column_and_fix_and_leaves_nothing(tmp_path, storage_root):
    source = write_ratings_csv(tmp_path / "ratings.csv")
    with pytest.raises(UploadError) as error:
        upload_event_file(source, DAY, {"item_id": "movieId", "ts": "timestamp"}, storage_root)
    message = str(error.value)
    assert "ratings.csv" in message and "'user_id'" in message and "--map user_id=" in message
    assert "userId" in message  # the columns that are there, so the user can pick one
    assert landed_names(storage_root) == []


@pytest.mark.parametrize("bad_day", ["../../etc", "2026-13-01", "20261120", "2026-11-20/../x"])
def test_upload_refuses_dates_that_are_not_calendar_days(tmp_path, storage_root, bad_day):
    source = write_ratings_csv(tmp_path / "ratings.csv")
    with pytest.raises(UploadError, match="YYYY-MM-DD"):
        upload_event_file(source, bad_day, {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}, storage_root)
    assert not (Path(storage_root) / "landing").exists()


def test_same_file_twice_is_a_no_op_and_a_different_file_with_the_same_name_is_refused(tmp_path, storage_root):
    mapping = {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}
    source = write_ratings_csv(tmp_path / "ratings.csv")
    upload_event_file(source, DAY, mapping, storage_root)
    assert upload_event_file(source, DAY, mapping, storage_root).already_present
    write_ratings_csv(source, rows=7)
    with pytest.raises(UploadError, match="never overwritten"):
        upload_event_file(source, DAY, mapping, storage_root)
    assert pd.read_csv(ProjectLayout(storage_root).landing_day(DAY) / "ratings.csv").shape[0] == 5


def test_cli_upload_exits_non_zero_with_the_reason(tmp_path, storage_root, projects_dir):
    source = tmp_path / "events.txt"
    source.write_text("user_id,item_id,ts\n1,2,2026-11-20T00:00:00Z\n")
    result = CliRunner().invoke(cli, ["upload", str(source), "--project", PROJECT, "--date", DAY])
    assert result.exit_code == 1
    assert "events.txt" in result.output and "unsupported file type '.txt'" in result.output
    ok = CliRunner().invoke(
        cli,
        [
            "upload",
            str(write_ratings_csv(tmp_path / "r.csv")),
            "--project",
            PROJECT,
            "--date",
            DAY,
            "--map",
            "user_id=userId",
            "--map",
            "item_id=movieId",
            "--map",
            "ts=timestamp",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "landed 5 rows" in ok.output
    # The file's rating column is not declared by the project: said, not silently dropped.
    assert "column(s) rating are not loaded" in ok.output and "data.extra_columns" in ok.output
    assert "r.csv" in landed_names(storage_root)


def test_corrupt_file_is_quarantined_with_reason_and_the_good_file_still_loads(storage_root):
    folder = ProjectLayout(storage_root).landing_day(DAY)
    folder.mkdir(parents=True)
    good = pa.table(
        {
            "user_id": [1, 2, 3],
            "item_id": [7, 8, 9],
            "ts": pa.array([1_795_176_000_000] * 3, pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(good, str(folder / "good.parquet"))
    sink = pa.BufferOutputStream()
    pq.write_table(good, sink)
    truncated = sink.getvalue().to_pybytes()[:-40]
    (folder / "broken.parquet").write_bytes(truncated)

    load = landed_day(storage_root, DAY)

    assert load.table.num_rows == 3 and load.loaded_files == ["good.parquet"]
    assert [(q.file, q.reason) for q in load.quarantined] == [("broken.parquet", "corrupt_parquet")]
    quarantined = ProjectLayout(storage_root).quarantine_day(DAY)
    assert (quarantined / "broken.parquet").read_bytes() == truncated
    reason = json.loads((quarantined / "broken.parquet.reason.json").read_text())
    assert reason["reason"] == "corrupt_parquet" and reason["file"].endswith("broken.parquet") and reason["time"]
    assert (folder / "broken.parquet").read_bytes() == truncated  # the original is never touched


@pytest.mark.parametrize("name", ["..hidden.csv", "a..b.csv", ".events.csv", "events.csv.columns.json"])
def test_upload_refuses_file_names_that_could_escape_or_hide_in_the_landing_zone(tmp_path, storage_root, name):
    source = tmp_path / name
    source.write_text("user_id,item_id,ts\n1,2,2026-11-20T01:00:00Z\n")
    with pytest.raises(UploadError, match="rename it"):
        upload_event_file(source, DAY, {}, storage_root)
    assert landed_names(storage_root) == []


MAPPING = {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}


@pytest.mark.parametrize(
    ("day", "message"),
    [
        ("2023-06-01", "partitions_start: 2023-06-01"),
        ("2099-01-01", "is in the future"),
    ],
)
def test_upload_refuses_days_that_can_never_be_partitions(tmp_path, storage_root, day, message):
    source = write_ratings_csv(tmp_path / "ratings.csv")
    with pytest.raises(UploadError, match=message):
        upload_event_file(source, day, MAPPING, storage_root, partitions_start="2024-01-01")
    assert landed_names(storage_root) == []


def test_upload_for_today_lands_with_a_note_that_it_is_ingested_after_midnight(tmp_path, storage_root):
    import datetime as dt

    today = dt.date(2026, 11, 20)
    result = upload_event_file(
        write_ratings_csv(tmp_path / "ratings.csv"), DAY, MAPPING, storage_root, "2024-01-01", today=today
    )
    assert "midnight UTC" in result.note and "ratings.csv" in landed_names(storage_root)


def test_upload_refuses_a_file_whose_rows_all_belong_to_another_day(tmp_path, storage_root):
    source = write_ratings_csv(tmp_path / "ratings.csv")  # rows on 2026-11-20
    with pytest.raises(UploadError, match="--date 2026-11-20"):
        upload_event_file(source, "2026-11-19", MAPPING, storage_root)
    assert landed_names(storage_root) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e" * 230 + ".csv", "user_id,item_id,ts\n1,2,2026-11-20T01:00:00Z\n", "rename it to at most 200 bytes"),
        ("twice.csv", "user_id,item_id,ts,ts\n1,2,2026-11-20T01:00:00Z,x\n", "appear more than once"),
    ],
)
def test_upload_refuses_bad_files_with_a_message_not_a_traceback(
    tmp_path, storage_root, projects_dir, name, content, message
):
    source = tmp_path / name
    source.write_text(content)
    result = CliRunner().invoke(cli, ["upload", str(source), "--project", PROJECT, "--date", DAY])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert landed_names(storage_root) == []


def test_a_demo_shorter_than_the_training_window_is_refused_up_front(tmp_path, storage_root, projects_dir):
    result = CliRunner().invoke(cli, ["demo", "--project", PROJECT, "--days", "4"], env={"DAGSTER_HOME": str(tmp_path)})
    assert result.exit_code == 2 and f"shorter than {PROJECT}'s training window of 7 days" in result.output
    assert not (Path(storage_root) / "landing").exists()  # refused before generating anything


RATED = {"rating": "float64"}


def test_a_declared_extra_column_is_kept_with_its_type_and_an_undeclared_one_is_not(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text(
        "userId,movieId,rating,timestamp,genre\n"
        "1,10,4.5,1795176000,drama\n2,11,,1795176001,comedy\n3,12,2,1795176002,drama\n"
    )
    mapping = parse_column_mapping(["user_id=userId", "item_id=movieId", "ts=timestamp", "rating=rating"], RATED)
    upload_event_file(source, DAY, mapping, storage_root, extra_columns=RATED)
    table = landed_day(storage_root, DAY, RATED).table
    assert table["rating"].to_pylist() == [4.5, None, 2.0]  # a blank cell is a missing rating
    assert "genre" not in table.column_names
    with pytest.raises(ValueError, match="neither a canonical column nor one of the project's data.extra_columns"):
        parse_column_mapping(["rating=rating"])


def test_a_rating_that_is_not_a_number_quarantines_its_file_and_names_the_column(tmp_path, storage_root):
    folder = ProjectLayout(storage_root).landing_day(DAY)
    folder.mkdir(parents=True)
    (folder / "bad.csv").write_text("user_id,item_id,ts,rating\n1,10,2026-11-20T01:00:00Z,five stars\n")
    (folder / "good.csv").write_text("user_id,item_id,ts,rating\n2,11,2026-11-20T02:00:00Z,3\n")
    load = landed_day(storage_root, DAY, RATED)
    assert load.loaded_files == ["good.csv"] and load.table["rating"].to_pylist() == [3.0]
    [bad] = load.quarantined
    assert bad.file == "bad.csv" and "'rating'" in bad.detail and "not numbers" in bad.detail
    assert "five stars" not in bad.detail


def test_upload_says_what_rows_of_other_days_do_to_the_day_and_points_to_import(tmp_path, storage_root, projects_dir):
    source = tmp_path / "history.csv"
    rows = ["u,i,t"] + [f"{n},{n},2026-11-{10 + n % 11:02d}T12:00:00Z" for n in range(1, 41)]
    source.write_text("\n".join(rows) + "\n")
    mapping = ["--map", "user_id=u", "--map", "item_id=i", "--map", "ts=t"]
    result = CliRunner().invoke(cli, ["upload", str(source), "--project", PROJECT, "--date", DAY, *mapping])
    assert result.exit_code == 0, result.output
    assert f"37 of 40 rows (92%) have timestamps outside {DAY}" in result.output
    assert "below the quality gate's 0.9, so its ingest fails and nothing downstream runs" in result.output
    assert f"algo-platform import {source} --project {PROJECT} --map user_id=u --map item_id=i --map ts=t" in (
        result.output
    )


def test_the_same_bytes_with_another_mapping_are_refused_not_silently_kept(tmp_path, storage_root):
    source = tmp_path / "ratings.csv"
    source.write_text("userId,movieId,other,timestamp\n1,10,20,1795176000\n")
    upload_event_file(source, DAY, {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}, storage_root)
    with pytest.raises(UploadError, match="another column mapping"):
        upload_event_file(source, DAY, {"user_id": "userId", "item_id": "other", "ts": "timestamp"}, storage_root)


@pytest.mark.parametrize("linked", ["landing/events", f"landing/events/{DAY}"])
def test_upload_never_writes_through_a_linked_landing_folder(tmp_path, storage_root, linked):
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = Path(storage_root) / linked
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UploadError, match="is a symbolic link; nothing is written through links"):
        upload_event_file(write_ratings_csv(tmp_path / "ratings.csv"), DAY, MAPPING, storage_root)
    assert list(outside.rglob("*")) == []


def _parquet(table: pa.Table, **options) -> bytes:
    import io

    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("name", "table", "options", "says"),
    [
        # One row holding a list of ten million values: the footer counts values, not rows.
        ("nested.parquet", pa.table({"user_id": [1], "l": pa.array([[0] * 2_000_000], pa.list_(pa.int64()))}), {},
         "2,000,001 values"),
        # One long string repeated in every row: stored once in a dictionary, copied per row once read.
        ("strings.parquet", pa.table({"user_id": [1] * 2000, "s": ["x" * 50_000] * 2000}), {"store_schema": False},
         "once read"),
    ],
)  # fmt: skip
def test_a_parquet_upload_that_expands_past_the_limits_is_refused(name, table, options, says):
    from algo_platform.ingest.formats import BadEventFile, DecompressionLimits, parse_bytes

    data = _parquet(table, **options)
    with pytest.raises(BadEventFile) as refused:
        parse_bytes(name, data, DecompressionLimits())
    assert refused.value.reason == "decompression_bomb" and says in refused.value.detail
    genuine = pa.table({"user_id": range(1, 3001), "item_id": range(1, 3001), "ts": ["2026-01-01T00:00:00Z"] * 3000})
    assert parse_bytes("events.parquet", _parquet(genuine), DecompressionLimits()).num_rows == 3000


def test_a_file_that_breaks_the_reader_unforeseen_is_quarantined_unreadable_without_its_content(
    storage_root, monkeypatch
):
    from algo_platform.ingest import landing

    folder = ProjectLayout(storage_root).landing_day(DAY)
    folder.mkdir(parents=True)
    rows = "user_id,item_id,ts\n1,7,2026-11-20T10:00:00Z\n"
    (folder / "good.csv").write_text(rows)
    (folder / "odd.csv").write_text(rows.replace("1,7", "2,8"))
    parse = landing.parse_bytes

    def breaks_on_odd(name, data):
        if name == "odd.csv":
            raise RecursionError(f"reader crashed inside {data[:30]!r}")  # a reader bug, quoting the content
        return parse(name, data)

    monkeypatch.setattr(landing, "parse_bytes", breaks_on_odd)
    load = landed_day(storage_root, DAY)
    assert load.loaded_files == ["good.csv"] and load.table.num_rows == 1  # the day still flows
    [bad] = load.quarantined
    assert (bad.file, bad.reason) == ("odd.csv", "unreadable")
    assert "RecursionError" in bad.detail and "user_id" not in bad.detail  # the type, not the content
    reason = json.loads((ProjectLayout(storage_root).quarantine_day(DAY) / "odd.csv.reason.json").read_text())
    assert reason["reason"] == "unreadable" and "2,8" not in json.dumps(reason)
