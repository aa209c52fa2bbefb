import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_platform.core.schema import CANONICAL_SCHEMA, EVENT_TYPES
from algo_platform.ingest.datagen import generate
from tests.support.factories import END_DAY


def test_generates_one_canonical_file_per_day_into_the_landing_zone(storage_root):
    written = generate(storage_root, days=3, events_per_day=2_000, seed=1, end_date=END_DAY)
    assert [d.day for d in written] == ["2026-11-18", "2026-11-19", "2026-11-20"]
    table = pq.read_table(written[-1].path)
    assert table.schema.equals(CANONICAL_SCHEMA)
    assert table.num_rows == 2_000
    assert set(pc.unique(table.column("event_type")).to_pylist()) <= set(EVENT_TYPES)
    day_start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert pc.min(table.column("ts")).as_py() >= day_start
    assert pc.max(table.column("ts")).as_py() < day_start + dt.timedelta(days=1)
    assert pc.min(table.column("watch_ms")).as_py() >= 0


def test_same_seed_same_data_different_seed_different_data(tmp_path):
    def events(seed, folder):
        return pq.read_table(generate(str(tmp_path / folder), 1, 1_000, seed, end_date=END_DAY)[0].path)

    assert events(7, "a").equals(events(7, "b"))
    assert not events(7, "a").equals(events(8, "c"))


def test_planted_defects_are_present_in_the_counts_reported(storage_root):
    day = generate(storage_root, days=1, events_per_day=10_000, seed=3, defect_rate=0.05, end_date=END_DAY)[0]
    frame = pq.read_table(day.path).to_pandas()
    assert day.defects == {
        k: 100 for k in ("duplicate", "null_id", "negative_watch", "unknown_event_type", "future_timestamp")
    }
    assert len(frame) == 10_100
    assert frame["event_id"].duplicated().sum() == 100
    assert frame["user_id"].isna().sum() + frame["item_id"].isna().sum() == 100
    assert (frame["watch_ms"] < 0).sum() == 100
    assert (~frame["event_type"].isin(EVENT_TYPES)).sum() == 100
    assert (frame["ts"] > dt.datetime(2030, 1, 1, tzinfo=dt.UTC)).sum() == 100


def test_next_item_is_predictable_from_the_previous_one(storage_root):
    """The learnable sequential habit: a user's next video is usually the same one for a given video."""
    frame = pq.read_table(generate(storage_root, 1, 20_000, seed=5, end_date=END_DAY)[0].path).to_pandas()
    same_user = frame["user_id"].to_numpy()[1:] == frame["user_id"].to_numpy()[:-1]
    pairs = np.stack([frame["item_id"].to_numpy()[:-1], frame["item_id"].to_numpy()[1:]], axis=1)[same_user]
    transitions = np.unique(pairs, axis=0, return_counts=True)
    by_source: dict[int, list[int]] = {}
    for (source, _), count in zip(transitions[0], transitions[1], strict=True):
        by_source.setdefault(int(source), []).append(int(count))
    top_share = sum(max(c) for c in by_source.values()) / len(pairs)
    # Popularity alone would put the most common successor far below this.
    assert top_share > 0.5
