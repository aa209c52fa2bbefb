import datetime as dt

import pandas as pd

from algo_platform.assets.sequences import build_training_sequences
from tests.conftest import END_DAY, make_events

HOLDOUT = END_DAY


def at(days_before: int, minute: int) -> pd.Timestamp:
    return pd.Timestamp(HOLDOUT - dt.timedelta(days=days_before), tz="UTC") + pd.Timedelta(minutes=minute)


def test_history_before_the_day_holdout_on_the_day_vocabulary_by_popularity():
    events = make_events(
        [
            {"user_id": 1, "item_id": 500, "ts": at(2, 1)},
            {"user_id": 1, "item_id": 700, "ts": at(1, 5)},
            {"user_id": 1, "item_id": 600, "ts": at(1, 2), "event_type": "skip"},  # skips are not sequence items
            {"user_id": 2, "item_id": 700, "ts": at(1, 1)},
            {"user_id": 1, "item_id": 700, "ts": at(0, 1)},
            {"user_id": 1, "item_id": 999, "ts": at(0, 2)},  # never seen in training: index 0
            {"user_id": 3, "item_id": 500, "ts": at(0, 3)},  # new user: holdout only
        ]
    )
    sequences, vocabulary = build_training_sequences(events, HOLDOUT)

    assert vocabulary.to_dict("list") == {"item_index": [1, 2], "item_id": [700, 500], "train_count": [2, 1]}
    rows = sequences.set_index("user_id")
    assert list(rows.loc[1, "history"]) == [2, 1]  # 500 then 700, in time order
    assert list(rows.loc[1, "holdout"]) == [1, 0]
    assert list(rows.loc[2, "history"]) == [1] and list(rows.loc[2, "holdout"]) == []
    assert list(rows.loc[3, "history"]) == [] and list(rows.loc[3, "holdout"]) == [2]
    assert rows["history_length"].tolist() == [2, 1, 0]
    assert sequences.attrs["holdout_unknown_items"] == 1
