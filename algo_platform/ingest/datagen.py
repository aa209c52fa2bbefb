"""Synthetic short-video behaviour events with structure a sequence model can learn.

The world: items belong to topics and, within a topic, form an ordered series (episode 1, 2,
3...). Users have a taste over a few topics and an activity level. A user's day is a sequence of
sessions; each session starts at a popular item of a topic the user likes and then mostly
follows the series. So the next item is predictable from the previous ones (sequential habit),
which topic from the user (taste), and popularity explains only a little.

Everything is vectorised with numpy/pyarrow: 10M events take seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_platform.core.atomic import write_atomically
from algo_platform.core.layout import ProjectLayout
from algo_platform.core.schema import CANONICAL_SCHEMA

if TYPE_CHECKING:
    from algo_platform.core.project import Project

TOPICS = (
    "comedy", "music", "dance", "food", "pets", "sports", "gaming", "beauty",
    "travel", "tech", "fashion", "education", "fitness", "art", "news", "diy",
)  # fmt: skip
DEVICES = ("android", "ios", "web")
REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-east", "sa-east")
DEFECT_KINDS = ("duplicate", "null_id", "negative_watch", "unknown_event_type", "future_timestamp")
SESSION_BREAK_PROBABILITY = 0.25  # mean session length of four videos
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class World:
    """The latent structure shared by every generated day (fixed by the seed)."""

    user_ids: np.ndarray  # (U,) int64
    user_activity: np.ndarray  # (U,) sampling probability
    user_taste_cdf: np.ndarray  # (U, T) cumulative topic preference
    user_taste: np.ndarray  # (U, T)
    user_device: np.ndarray  # (U,) index into DEVICES
    user_region: np.ndarray  # (U,) index into REGIONS
    item_ids: np.ndarray  # (I,) int64
    item_duration_ms: np.ndarray  # (I,) int64
    series_items: np.ndarray  # item indices ordered by topic, then position in the series
    topic_offsets: np.ndarray  # (T + 1,) start of each topic's series in `series_items`
    series_popularity_cdf: np.ndarray  # within-topic popularity CDF shifted by topic index


def build_world(n_users: int, n_items: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    n_topics = len(TOPICS)
    user_ids = np.sort(rng.choice(np.arange(10_000, 10_000 + n_users * 20), n_users, replace=False))
    item_ids = np.sort(rng.choice(np.arange(1_000_000, 1_000_000 + n_items * 20), n_items, replace=False))
    taste = rng.dirichlet(np.full(n_topics, 0.15), size=n_users)
    item_topic = rng.integers(0, n_topics, n_items)
    series_items = np.lexsort((rng.random(n_items), item_topic))  # random episode order
    topic_offsets = np.searchsorted(item_topic[series_items], np.arange(n_topics + 1))
    # Popularity falls with position in the series (Zipf-like): early episodes are watched most.
    popularity_cdf = np.empty(n_items)
    for topic in range(n_topics):
        start, end = topic_offsets[topic], topic_offsets[topic + 1]
        weights = 1.0 / np.arange(1, end - start + 1) ** 0.9
        popularity_cdf[start:end] = topic + np.cumsum(weights) / weights.sum()
    activity = rng.lognormal(0.0, 1.0, n_users)
    return World(
        user_ids=user_ids.astype(np.int64),
        user_activity=activity / activity.sum(),
        user_taste_cdf=np.cumsum(taste, axis=1),
        user_taste=taste,
        user_device=rng.choice(len(DEVICES), n_users, p=[0.55, 0.35, 0.10]),
        user_region=rng.integers(0, len(REGIONS), n_users),
        item_ids=item_ids.astype(np.int64),
        item_duration_ms=np.clip(rng.lognormal(np.log(25_000), 0.6, n_items), 3_000, 600_000).astype(np.int64),
        series_items=series_items,
        topic_offsets=topic_offsets,
        series_popularity_cdf=popularity_cdf,
    )


def _sample_topics(world: World, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    draws = rng.random(len(users))
    topics = (world.user_taste_cdf[users] < draws[:, None]).sum(axis=1)
    return np.minimum(topics, len(TOPICS) - 1)


def generate_day(world: World, day: dt.date, n_events: int, rng: np.random.Generator) -> pa.Table:
    """One day of clean events, sorted by user and time."""
    n_topics = len(TOPICS)
    users = rng.choice(len(world.user_ids), n_events, p=world.user_activity)
    offsets_ms = rng.integers(0, MS_PER_DAY, n_events)
    order = np.lexsort((offsets_ms, users))
    users, offsets_ms = users[order], offsets_ms[order]

    position = np.arange(n_events)
    first_of_user = np.ones(n_events, dtype=bool)
    first_of_user[1:] = users[1:] != users[:-1]
    session_start = first_of_user | (rng.random(n_events) < SESSION_BREAK_PROBABILITY)
    last_start = np.maximum.accumulate(np.where(session_start, position, 0))
    starts = position[session_start]

    # Each session: a topic from the user's taste, a popular entry point into that topic's series,
    # then the following episodes in order.
    start_topics = _sample_topics(world, users[starts], rng)
    entry = np.searchsorted(world.series_popularity_cdf, start_topics + rng.random(len(starts)) * 0.999999)
    entry = np.clip(entry, world.topic_offsets[start_topics], world.topic_offsets[start_topics + 1] - 1)
    session_topic = np.empty(n_events, dtype=np.int64)
    session_entry = np.empty(n_events, dtype=np.int64)
    session_topic[starts], session_entry[starts] = start_topics, entry
    topics = session_topic[last_start]
    topic_start = world.topic_offsets[topics]
    topic_size = world.topic_offsets[topics + 1] - topic_start
    step = position - last_start
    items = world.series_items[topic_start + (session_entry[last_start] - topic_start + step) % topic_size]

    # Engagement follows taste: liked topics are watched longer and liked more often.
    affinity = world.user_taste[users, topics] * n_topics
    propensity = 1.0 / (1.0 + np.exp(-1.5 * (affinity - 1.0)))
    watch_ratio = np.clip(rng.beta(1 + 4 * propensity, 1 + 4 * (1 - propensity)) * 1.3, 0.0, 3.0)
    duration = world.item_duration_ms[items]
    draw = rng.random(n_events)
    event_type = np.full(n_events, 0)  # play
    event_type[draw < 0.06 + 0.25 * propensity] = 1  # like
    event_type[draw < 0.02 + 0.05 * propensity] = 3  # comment
    event_type[draw < 0.01 + 0.04 * propensity] = 2  # share
    event_type[draw < 0.004] = 4  # follow
    event_type[watch_ratio < 0.15] = 5  # skip
    type_names = np.array(["play", "like", "share", "comment", "follow", "skip"], dtype=object)

    day_start = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
    event_ids = pc.binary_join_element_wise(
        pa.scalar(f"ev-{day:%Y%m%d}"), pc.cast(pa.array(position), pa.string()), "-"
    )
    return pa.Table.from_arrays(
        [
            event_ids,
            pa.array(world.user_ids[users]),
            pa.array(world.item_ids[items]),
            pa.DictionaryArray.from_arrays(pa.array(event_type, pa.int8()), pa.array(type_names.tolist())).cast(
                pa.string()
            ),
            pa.array((watch_ratio * duration).astype(np.int64)),
            pa.array(duration),
            pa.array(day_start + offsets_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.DictionaryArray.from_arrays(pa.array(world.user_device[users], pa.int8()), pa.array(DEVICES)).cast(
                pa.string()
            ),
            pa.DictionaryArray.from_arrays(pa.array(world.user_region[users], pa.int8()), pa.array(REGIONS)).cast(
                pa.string()
            ),
            pa.DictionaryArray.from_arrays(pa.array(topics, pa.int8()), pa.array(TOPICS)).cast(pa.string()),
        ],
        schema=CANONICAL_SCHEMA,
    )


def _replace_rows(column: pa.ChunkedArray, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """`column` with `column[rows] = values`, done as one vectorised take."""
    original = column.combine_chunks()
    index = np.arange(len(original))
    index[rows] = len(original) + np.arange(len(rows))
    return pa.concat_arrays([original, values.cast(original.type)]).take(pa.array(index))


def plant_defects(table: pa.Table, defect_rate: float, rng: np.random.Generator) -> tuple[pa.Table, dict[str, int]]:
    """Corrupt about `defect_rate` of the rows, split evenly over DEFECT_KINDS; return the counts."""
    n = table.num_rows
    per_kind = int(round(n * defect_rate / len(DEFECT_KINDS)))
    if per_kind == 0:
        return table, dict.fromkeys(DEFECT_KINDS, 0)
    # Distinct rows per kind, so every planted defect is counted exactly once downstream.
    shuffled = rng.permutation(n)
    victims = shuffled[: per_kind * 4].reshape(4, per_kind)
    null_rows, negative_rows, unknown_rows, future_rows = victims
    user_null_rows, item_null_rows = null_rows[: per_kind // 2], null_rows[per_kind // 2 :]
    watch = table.column("watch_ms").combine_chunks()
    ts = table.column("ts").combine_chunks()
    changed = {
        "user_id": _replace_rows(table.column("user_id"), user_null_rows, pa.nulls(len(user_null_rows), pa.int64())),
        "item_id": _replace_rows(table.column("item_id"), item_null_rows, pa.nulls(len(item_null_rows), pa.int64())),
        "watch_ms": _replace_rows(
            table.column("watch_ms"), negative_rows, pc.subtract(pa.scalar(-1, pa.int64()), watch.take(negative_rows))
        ),
        "event_type": _replace_rows(table.column("event_type"), unknown_rows, pa.array(["clickk"] * per_kind)),
        "ts": _replace_rows(
            table.column("ts"), future_rows, pc.add(ts.take(future_rows), pa.scalar(dt.timedelta(days=3650)))
        ),
    }
    corrupted = pa.Table.from_arrays(
        [changed.get(name, table.column(name)) for name in table.column_names], schema=table.schema
    )
    # Duplicates are exact copies of untouched rows (same event_id), as a retried upload would make.
    clean_rows = shuffled[per_kind * 4 : per_kind * 5]
    duplicates = table.take(pa.array(clean_rows))
    counts = {kind: per_kind for kind in DEFECT_KINDS}
    return pa.concat_tables([corrupted, duplicates]), counts


def with_ratings(table: pa.Table, column: str, rng: np.random.Generator) -> pa.Table:
    """Explicit feedback: a 1-5 rating per event that follows how much of the item was watched
    (a like adds a star), with noise, as a ratings log would hold it."""
    watched = pc.divide(pc.cast(table["watch_ms"], pa.float64()), pc.cast(table["item_duration_ms"], pa.float64()))
    ratio = np.clip(pc.fill_null(watched, 0.0).to_numpy(zero_copy_only=False), 0.0, 1.0)
    liked = pc.fill_null(pc.equal(table["event_type"], "like"), False).to_numpy(zero_copy_only=False)
    stars = np.clip(np.rint(1 + 3.5 * ratio + liked + rng.normal(0, 0.7, len(ratio))), 1, 5)
    return table.append_column(column, pa.array(stars, pa.float64()))


def default_end_date() -> dt.date:
    """Yesterday in UTC: the latest complete day."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@dataclass(frozen=True)
class GeneratedDay:
    day: str
    path: str
    rows: int
    defects: dict[str, int]


def world_for(events_per_day: int, seed: int, n_users: int | None = None, n_items: int | None = None) -> World:
    """The users and items `generate` draws its days from: the same world for the same events and seed,
    so later days (a simulated release's) come from the same people."""
    n_users = n_users or int(np.clip(events_per_day // 10, 100, 2_000_000))
    n_items = n_items or int(np.clip(events_per_day // 25, 200, 1_000_000))
    return build_world(n_users, n_items, seed)


def generate(
    storage_root: str,
    days: int,
    events_per_day: int,
    seed: int,
    defect_rate: float = 0.0,
    end_date: dt.date | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
    ratings_column: str | None = None,
) -> list[GeneratedDay]:
    """Write `days` daily Parquet files ending at `end_date` into the landing zone (with a rating
    column of that name when `ratings_column` is given)."""
    if days < 1 or events_per_day < 1:
        raise ValueError(f"days ({days}) and events per day ({events_per_day}) must be positive")
    if not 0.0 <= defect_rate < 1.0:
        raise ValueError(f"defect rate {defect_rate} must be in [0, 1), e.g. 0.02 for 2% bad rows")
    end_date = end_date or default_end_date()
    world = world_for(events_per_day, seed, n_users, n_items)
    written = []
    for offset in range(days - 1, -1, -1):
        day = end_date - dt.timedelta(days=offset)
        rng = np.random.default_rng([seed, day.toordinal()])
        table = generate_day(world, day, events_per_day, rng)
        table, defects = plant_defects(table, defect_rate, rng)
        if ratings_column:
            table = with_ratings(table, ratings_column, rng)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        target = ProjectLayout(storage_root).landing_day(day.isoformat()) / f"events-{day.isoformat()}.parquet"
        write_atomically(target, buffer.getvalue())
        written.append(GeneratedDay(day.isoformat(), str(target), table.num_rows, defects))
    return written


def generate_for_project(
    project_root: str,
    project: Project,
    days: int,
    events_per_day: int,
    seed: int,
    defect_rate: float = 0.0,
    end_date: dt.date | None = None,
) -> list[GeneratedDay]:
    """Synthetic days in a project's landing zone, with ratings when it declares explicit feedback."""
    feedback = project.data.feedback
    ratings = feedback.column if feedback else None
    return generate(project_root, days, events_per_day, seed, defect_rate, end_date, ratings_column=ratings)


def item_topics(world: World) -> np.ndarray:
    """The topic of every item (index into TOPICS)."""
    topic = np.empty(len(world.item_ids), dtype=np.int64)
    for t in range(len(TOPICS)):
        topic[world.series_items[world.topic_offsets[t] : world.topic_offsets[t + 1]]] = t
    return topic


def respond_to_lists(
    world: World, served_users: np.ndarray, served_items: list[np.ndarray], day: dt.date, rng: np.random.Generator
) -> pa.Table:
    """The plays the users give the lists they were served on `day`: the item at position p of a list
    is played with probability 0.8 * (the user's hidden taste for its topic) / sqrt(1 + p), so a model
    that serves each user's topics earns more plays (the closed loop of a grey release)."""
    user_index = pd_index(world.user_ids)
    item_index = pd_index(world.item_ids)
    topic = item_topics(world)
    users, items, positions = [], [], []
    for user, listed in zip(served_users.tolist(), served_items, strict=True):
        u = user_index.get(user)
        known = [item_index.get(int(i)) for i in listed]
        for position, i in enumerate(known):
            if u is not None and i is not None:
                users.append(u), items.append(i), positions.append(position)
    users_a, items_a, positions_a = (np.asarray(x, dtype=np.int64) for x in (users, items, positions))
    chance = 0.8 * world.user_taste[users_a, topic[items_a]] / np.sqrt(1 + positions_a) if len(users_a) else []
    played = rng.random(len(users_a)) < chance
    users_a, items_a = users_a[played], items_a[played]
    n = len(users_a)
    day_start = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
    duration = world.item_duration_ms[items_a]
    return pa.Table.from_arrays(
        [
            pc.binary_join_element_wise(
                pa.scalar(f"served-{day:%Y%m%d}"), pc.cast(pa.array(np.arange(n)), pa.string()), "-"
            ),  # fmt: skip
            pa.array(world.user_ids[users_a]),
            pa.array(world.item_ids[items_a]),
            pa.array(["play"] * n, pa.string()),
            pa.array((duration * 0.8).astype(np.int64)),
            pa.array(duration),
            pa.array(day_start + rng.integers(0, MS_PER_DAY, n), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array([DEVICES[d] for d in world.user_device[users_a]], pa.string()),
            pa.array([REGIONS[r] for r in world.user_region[users_a]], pa.string()),
            pa.array([TOPICS[t] for t in topic[items_a]], pa.string()),
        ],
        schema=CANONICAL_SCHEMA,
    )


def pd_index(ids: np.ndarray) -> dict[int, int]:
    return {int(value): position for position, value in enumerate(ids.tolist())}


def land_day_with_feedback(
    storage_root: str, world: World, day: dt.date, events: int, seed: int, served: pa.Table | None
) -> GeneratedDay:
    """One generated day in the landing zone, plus the plays its users give the lists served on it."""
    rng = np.random.default_rng([seed, day.toordinal()])
    table = generate_day(world, day, events, rng)
    if served is not None and served.num_rows:
        items = [np.asarray(listed) for listed in served.column("item_ids").to_pylist()]
        table = pa.concat_tables([table, respond_to_lists(world, served.column("user_id").to_numpy(), items, day, rng)])
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    target = ProjectLayout(storage_root).landing_day(day.isoformat()) / f"events-{day.isoformat()}.parquet"
    write_atomically(target, buffer.getvalue())
    return GeneratedDay(day.isoformat(), str(target), table.num_rows, dict.fromkeys(DEFECT_KINDS, 0))
