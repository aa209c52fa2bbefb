import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.testing import assert_frame_equal

from algo_platform.assets.events import clean_events
from algo_platform.core.schema import pandas_dtypes
from algo_platform.engines.polars.cleaning import (
    DROP_REASONS,
    EVENT_CONTENT,
    clean_parquet,
    clean_table,
    raw_collisions_of_file,
)
from algo_platform.engines.polars.features import item_features, user_features
from algo_platform.engines.polars.large_day import clean_file, item_features_of_file, user_features_of_file
from tests.support.factories import END_DAY, NOW, make_events

NOON = pd.Timestamp(END_DAY, tz="UTC") + pd.Timedelta(hours=12)


def test_each_defect_kind_is_dropped_and_counted_under_its_reason():
    raw = make_events(
        [
            {"event_id": "ok-1"},
            {"event_id": "ok-2", "event_type": " LIKE "},  # normalised, kept
            {"event_id": "no-user", "user_id": pd.NA},
            {"event_id": "no-item", "item_id": pd.NA},
            {"event_id": "no-ts", "ts": pd.NaT},
            {"event_id": "bad-type", "event_type": "clickk"},
            {"event_id": "negative", "watch_ms": -5},
            {"event_id": "zero-duration", "item_duration_ms": 0},
            {"event_id": "future", "ts": NOON + pd.Timedelta(days=3650)},
            {"event_id": "yesterday", "ts": NOON - pd.Timedelta(days=1)},
            {"event_id": "ok-1", "ts": NOON},  # the first row sent again: a resend
            {"event_id": "two-faults", "user_id": pd.NA, "watch_ms": -1},  # counted once, first reason
            {"event_id": "zero-user", "user_id": 0},
            {"event_id": "negative-item", "item_id": -3},
            {"event_id": "ok-2", "user_id": 99},  # another event under ok-2's id: a collision
        ]
    )
    cleaned, dropped = clean_events(raw, END_DAY, NOW)

    assert sorted(cleaned["event_id"]) == ["ok-1", "ok-2"]
    assert list(dropped) == list(DROP_REASONS)
    assert dropped == {
        "missing_user_id": 2,
        "missing_item_id": 1,
        "non_positive_user_id": 1,
        "non_positive_item_id": 1,
        "missing_ts": 1,
        "unknown_event_type": 1,
        "negative_watch_ms": 1,
        "invalid_item_duration": 1,
        "future_timestamp": 1,
        "outside_partition_day": 1,
        "duplicate_event_id": 1,
        "event_id_collision": 1,
    }
    assert cleaned.loc[cleaned["event_id"] == "ok-2", "user_id"].item() == 1  # the first arrival won
    assert sum(dropped.values()) + len(cleaned) == len(raw)
    assert cleaned.loc[cleaned["event_id"] == "ok-2", "event_type"].item() == "like"


def test_types_are_normalised_and_rows_sorted_by_user_then_time():
    raw = make_events(
        [
            {"user_id": 2, "ts": NOON + pd.Timedelta(minutes=5), "device": " iOS"},
            {"user_id": 1, "ts": NOON + pd.Timedelta(minutes=9), "region": None},
            {"user_id": 1, "ts": NOON, "event_type": None},  # no type: counts as a play
        ]
    )
    cleaned, _ = clean_events(raw, END_DAY, NOW)
    assert cleaned["user_id"].dtype == "int64" and cleaned["item_id"].dtype == "int64"
    assert cleaned["user_id"].tolist() == [1, 1, 2]
    assert cleaned["ts"].is_monotonic_increasing is False  # sorted per user, not globally
    assert cleaned["event_type"].tolist() == ["play", "play", "play"]
    assert cleaned["device"].tolist() == ["ios", "ios", "ios"]
    assert cleaned["region"].tolist()[1] == "unknown"


def test_missing_optional_columns_are_not_a_reason_to_drop():
    raw = make_events([{"watch_ms": pd.NA, "item_duration_ms": pd.NA}])
    cleaned, dropped = clean_events(raw, END_DAY, NOW)
    assert len(cleaned) == 1 and sum(dropped.values()) == 0


def test_dedup_keeps_the_first_valid_row_of_each_event_id_however_ids_are_shaped():
    """Ids of mixed lengths and shared endings, repeats far apart, some first copies invalid: the
    kept row is always the first valid one, as pandas' `duplicated` says, and every other valid
    copy is counted as a resend or (other content) a collision."""
    rng = np.random.default_rng(7)
    pool = [f"{prefix}{n}" for prefix in ("e", "event-", "x-1-") for n in range(400)] + ["", " ", "9", "99"]
    ids = rng.choice(pool, 5_000).tolist()
    invalid = rng.random(5_000) < 0.2
    users = rng.integers(1, 3, 5_000)  # repeats of an id differ in their user half of the time
    raw = make_events(
        [
            {"event_id": event_id, "user_id": pd.NA if bad else int(user), "ts": NOON}
            for event_id, bad, user in zip(ids, invalid, users, strict=True)
        ]
    )
    valid = raw[~invalid].reset_index(drop=True)
    expected = valid[~valid["event_id"].duplicated()]
    cleaned, dropped = clean_events(raw, END_DAY, NOW)

    kept = cleaned.sort_values(["user_id", "event_id"]).reset_index(drop=True)
    expected = expected.sort_values(["user_id", "event_id"]).reset_index(drop=True)
    assert kept["event_id"].tolist() == expected["event_id"].tolist()
    assert kept["user_id"].tolist() == expected["user_id"].astype("int64").tolist()
    firsts = valid.drop_duplicates("event_id").set_index("event_id")["user_id"]
    repeats = valid[valid["event_id"].duplicated()]
    collisions = int((repeats["user_id"].to_numpy() != firsts.loc[repeats["event_id"]].to_numpy()).sum())
    assert 0 < collisions < len(repeats)  # the data has both kinds to tell apart
    assert dropped["event_id_collision"] == collisions
    assert dropped["duplicate_event_id"] == len(repeats) - collisions


def test_resends_and_collisions_are_told_apart_when_optional_columns_are_absent():
    """Files with the required columns only: the optional ones arrive as Arrow's null type."""
    ts = pa.array([NOON.value // 1_000_000] * 3, pa.timestamp("ms", tz="UTC"))
    raw = pa.table(
        {
            "event_id": ["a", "a", "a"],
            "user_id": pa.array([1, 1, 2], pa.int64()),
            "item_id": pa.array([5, 5, 5], pa.int64()),
            "event_type": pa.nulls(3),
            "watch_ms": pa.nulls(3, pa.int64()),
            "item_duration_ms": pa.nulls(3, pa.int64()),
            "ts": ts,
            "device": pa.nulls(3),
            "region": pa.nulls(3),
            "topic": pa.nulls(3),
        }
    )
    cleaned, dropped = clean_events(raw, END_DAY, NOW)
    assert cleaned["user_id"].tolist() == [1]
    assert dropped["duplicate_event_id"] == 1 and dropped["event_id_collision"] == 1


def test_a_day_cleaned_in_parts_from_parquet_equals_the_day_cleaned_in_memory(tmp_path):
    """The large-day path (dedup per id bucket, sort per user range, streamed to Parquet) gives
    the same table and drop counts as cleaning in memory, on every defect kind and many collisions."""
    rng = np.random.default_rng(11)
    ids = rng.choice([f"id-{n}" for n in range(1_500)], 4_000).tolist()

    def pick(*choices):
        return choices[rng.integers(0, len(choices))]

    rows = [
        {
            "event_id": event_id,
            "user_id": pick(pd.NA, 0, *range(1, 40)),
            "item_id": pick(pd.NA, -3, *range(1, 30)),
            "event_type": pick("play", " LIKE", "skip", None, "clickk"),
            "watch_ms": pick(-5, pd.NA, *range(0, 20_000, 997)),
            "item_duration_ms": pick(0, pd.NA, *range(1_000, 30_000, 1_013)),
            "ts": pick(pd.NaT, NOON + pd.Timedelta(days=3650), NOON - pd.Timedelta(days=1), *[NOON] * 20)
            + pd.Timedelta(seconds=int(rng.integers(0, 40_000))),
            "device": pick("ios", " Android ", None),
        }
        for event_id in ids
    ]
    rows += [rows[i] for i in rng.integers(0, len(rows), 400)]  # resends: exact copies, arriving later
    raw = pa.Table.from_pandas(make_events(rows), preserve_index=False)
    pq.write_table(raw, tmp_path / "raw.parquet")
    in_memory, counts = clean_table(raw, END_DAY, NOW)

    in_parts = clean_file(tmp_path / "raw.parquet", tmp_path / "cleaned.parquet", END_DAY, NOW, rows_per_part=300)

    assert in_parts == counts
    assert all(counts.values())  # every reason has rows: nothing here is vacuous
    from_file, file_counts = clean_parquet(tmp_path / "raw.parquet", END_DAY, NOW)  # the cleaned_events step
    assert file_counts == counts and from_file.equals(in_memory)
    colliding = raw_collisions_of_file(tmp_path / "raw.parquet")  # the raw_events step
    assert colliding == _collisions(raw) and colliding
    stored = pq.read_table(tmp_path / "cleaned.parquet")
    assert pq.ParquetFile(tmp_path / "cleaned.parquet").metadata.num_row_groups > 1  # it did run in parts
    assert stored.schema.equals(in_memory.schema)
    # Read by pandas as the cleaned_events step stores a day cleaned in memory: gaps as <NA>.
    assert stored.to_pandas().equals(
        in_memory.replace_schema_metadata(pandas_dtypes(in_memory.schema, True)).to_pandas()
    )
    assert str(stored.to_pandas()["watch_ms"].dtype) == "Int64"

    users = user_features_of_file(tmp_path / "cleaned.parquet", rows_per_part=300)
    items = item_features_of_file(tmp_path / "cleaned.parquet", rows_per_part=300)
    whole = pl.from_arrow(in_memory).lazy()
    assert_frame_equal(users, user_features(whole).collect(), check_dtypes=False)
    assert_frame_equal(items, item_features(whole).collect(), check_dtypes=False)
    assert items["popularity_rank"].min() == 1 and users.height > 10  # ranked over every bucket at once


def _collisions(raw: pa.Table) -> list[int]:
    """The oracle, row by row: positions of rows whose event_id an earlier row holds with other content."""
    frame = raw.select(["event_id", *EVENT_CONTENT]).to_pandas()
    first_seen: dict = {}
    colliding = []
    for position, (event_id, *content) in enumerate(frame.itertuples(index=False)):
        content = tuple(None if pd.isna(value) else value for value in content)
        if first_seen.setdefault(event_id, content) != content:
            colliding.append(position)
    return colliding
