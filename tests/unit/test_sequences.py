import datetime as dt

import pandas as pd

from algo_platform.assets.sequences import build_training_sequences
from tests.support.factories import END_DAY, make_events

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


def test_leave_last_out_holds_out_each_users_last_interaction_whatever_the_day():
    """Users active on scattered days: user 1's last item was days ago, user 2 has too few to hold out."""
    events = make_events(
        [
            {"user_id": 1, "item_id": 500, "ts": at(30, 1)},
            {"user_id": 1, "item_id": 600, "ts": at(12, 1)},
            {"user_id": 1, "item_id": 700, "ts": at(5, 1)},  # last: held out, though not on the last day
            {"user_id": 2, "item_id": 500, "ts": at(3, 1)},
            {"user_id": 2, "item_id": 600, "ts": at(0, 1)},
            {"user_id": 3, "item_id": 600, "ts": at(9, 1)},
            {"user_id": 3, "item_id": 500, "ts": at(2, 1)},
            {"user_id": 3, "item_id": 800, "ts": at(2, 2), "event_type": "skip"},  # not an interaction
            {"user_id": 3, "item_id": 500, "ts": at(1, 1)},
        ]
    )
    sequences, vocabulary = build_training_sequences(events, HOLDOUT, protocol="leave_last_out")
    index = dict(zip(vocabulary["item_id"], vocabulary["item_index"], strict=True))
    rows = sequences.set_index("user_id")
    assert [list(rows.loc[u, "holdout"]) for u in (1, 2, 3)] == [[0], [], [index[500]]]  # 700: never trained on
    assert list(rows.loc[1, "history"]) == [index[500], index[600]]
    assert list(rows.loc[2, "history"]) == [index[500], index[600]]  # two items: all of it trains
    assert list(rows.loc[3, "history"]) == [index[600], index[500]]


def test_explicit_feedback_below_the_threshold_is_not_an_interaction():
    events = make_events(
        [
            {"user_id": 1, "item_id": 500, "ts": at(2, 1)},
            {"user_id": 1, "item_id": 600, "ts": at(1, 1)},  # rated 2: not something the user wants more of
            {"user_id": 1, "item_id": 700, "ts": at(1, 2)},  # no rating (a plain play): still counts
            {"user_id": 1, "item_id": 800, "ts": at(0, 1)},
        ]
    ).assign(rating=[5.0, 2.0, None, 4.0])
    sequences, vocabulary = build_training_sequences(events, HOLDOUT, feedback=("rating", 3.5))
    assert sorted(vocabulary["item_id"]) == [500, 700]
    assert sequences["history_length"].tolist() == [2] and sequences["holdout_length"].tolist() == [1]
