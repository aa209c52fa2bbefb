import pandas as pd
import pytest

from algo_platform.assets.events import clean_events
from algo_platform.assets.features import build_item_features, build_user_features
from tests.support.factories import END_DAY, NOW, make_events


@pytest.fixture
def events() -> pd.DataFrame:
    raw = make_events(
        [
            # user 1: three videos, one liked, one skipped; loves music
            {
                "user_id": 1,
                "item_id": 10,
                "event_type": "play",
                "watch_ms": 10_000,
                "item_duration_ms": 10_000,
                "topic": "music",
            },
            {
                "user_id": 1,
                "item_id": 11,
                "event_type": "like",
                "watch_ms": 5_000,
                "item_duration_ms": 10_000,
                "topic": "music",
            },
            {
                "user_id": 1,
                "item_id": 12,
                "event_type": "skip",
                "watch_ms": 500,
                "item_duration_ms": 10_000,
                "topic": "pets",
            },
            # user 2: one share of item 10, watched twice over
            {
                "user_id": 2,
                "item_id": 10,
                "event_type": "share",
                "watch_ms": 20_000,
                "item_duration_ms": 10_000,
                "topic": "music",
                "device": "android",
            },
        ]
    )
    return clean_events(raw, END_DAY, NOW)[0]


def test_user_features_on_a_hand_made_day(events):
    users = build_user_features(events).set_index("user_id")
    one, two = users.loc[1], users.loc[2]
    assert one["events"] == 3 and one["plays"] == 1 and one["likes"] == 1 and one["skips"] == 1
    assert one["total_watch_ms"] == 15_500
    assert one["mean_watch_ratio"] == pytest.approx((1.0 + 0.5 + 0.05) / 3)
    assert one["completion_rate"] == pytest.approx(1 / 3)
    assert one["like_rate"] == pytest.approx(1 / 3) and one["skip_rate"] == pytest.approx(1 / 3)
    assert one["distinct_items"] == 3
    assert one["top_topics"] == "music, pets"
    assert two["share_rate"] == 1.0 and two["mean_watch_ratio"] == pytest.approx(2.0)
    assert two["main_device"] == "android"


def test_a_users_main_device_is_the_one_with_most_events_not_the_first_by_name():
    raw = make_events([{"user_id": 3, "device": device} for device in ("web", "android", "web")])
    users = build_user_features(clean_events(raw, END_DAY, NOW)[0]).set_index("user_id")
    assert users.loc[3, "main_device"] == "web"


def test_item_features_on_a_hand_made_day(events):
    items = build_item_features(events).set_index("item_id")
    assert items.loc[10, "events"] == 2 and items.loc[10, "unique_users"] == 2
    assert items.loc[10, "popularity_rank"] == 1
    assert items.loc[10, "mean_watch_ratio"] == pytest.approx(1.5)
    assert items.loc[10, "share_rate"] == pytest.approx(0.5)
    assert items.loc[12, "skip_rate"] == 1.0 and items.loc[12, "topic"] == "pets"
