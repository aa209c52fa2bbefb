"""A synthetic explicit-ratings log in the shape of public ones (MovieLens, Netflix Prize).

Independent of `algo_platform.ingest.datagen` (the short-video world the tests and the demo use), so the
models are measured on data neither they nor the tests were built around. What it reproduces:

- a catalogue with long-tailed popularity (Zipf-like) and releases spread over the years, each
  new title drawing a burst of attention that fades over weeks;
- genres, and users whose tastes sit on a few of them;
- franchises: sequels released in order, watched in order more often than not;
- heavy-tailed activity (most users rate a few dozen titles, a few rate a thousand), users
  joining at any point and coming back on scattered days over years, rating in sittings;
- 1-5 star ratings (with halves) from taste, the title's quality and the user's own bias, so a
  threshold separates liked titles from disliked ones;
- a CSV as public logs ship it: `userId,movieId,rating,timestamp` (epoch seconds), sorted by user.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RatingsShape:
    users: int = 6_000
    items: int = 3_500
    genres: int = 18
    start: dt.date = dt.date(2019, 1, 1)
    years: int = 4
    median_ratings_per_user: float = 30.0
    seed: int = 7


@dataclass
class Catalogue:
    genre: np.ndarray  # genre of each item
    quality: np.ndarray  # how well a title is rated on average (standard normal)
    appeal: np.ndarray  # long-tailed base popularity
    release_day: np.ndarray  # day index the title becomes available (negative: before the log starts)
    sequel: np.ndarray  # the next title of its franchise, or -1


def build_catalogue(shape: RatingsShape, rng: np.random.Generator) -> Catalogue:
    days = shape.years * 365
    genre_share = 1.0 / np.arange(1, shape.genres + 1) ** 0.8
    genre = rng.choice(shape.genres, size=shape.items, p=genre_share / genre_share.sum())
    appeal = 1.0 / rng.permutation(np.arange(1, shape.items + 1)) ** 1.0
    # Two thirds of the catalogue predates the log; the rest is released during it.
    new = rng.random(shape.items) < 0.35
    release_day = np.where(new, rng.integers(0, days - 30, shape.items), -rng.integers(1, 20 * 365, shape.items))
    sequel = np.full(shape.items, -1)
    # Franchises: runs of 2-5 titles of one genre, released in order.
    order = rng.permutation(shape.items)
    position = 0
    while position < int(shape.items * 0.15):
        length = int(rng.integers(2, 6))
        titles = order[position : position + length]
        position += length
        genre[titles] = genre[titles[0]]
        release_day[titles] = np.sort(release_day[titles])
        sequel[titles[:-1]] = titles[1:]
    return Catalogue(genre, rng.normal(size=shape.items), appeal, release_day, sequel)


def _user_ratings(
    catalogue: Catalogue,
    taste: np.ndarray,
    bias: float,
    count: int,
    first_day: int,
    days: int,
    rng: np.random.Generator,
) -> list[tuple[int, float, int]]:
    """(item, rating, second of the log) for one user: sittings on scattered days, in order."""
    sittings = 1 + rng.poisson(count / 10)
    gaps = rng.exponential(45.0, sittings)
    gaps[0] = 0.0
    sitting_days = first_day + np.cumsum(gaps).astype(int)
    per_sitting = np.bincount(rng.integers(0, sittings, count), minlength=sittings)
    # Sittings after the log's end have not happened yet: the user's later ratings are not in it.
    per_sitting, sitting_days = per_sitting[sitting_days < days], sitting_days[sitting_days < days]
    seen = np.zeros(len(catalogue.genre), dtype=bool)
    out: list[tuple[int, float, int]] = []
    for day, size in zip(sitting_days, per_sitting, strict=True):
        second = int(day) * 86_400 + int(rng.integers(8 * 3600, 23 * 3600))
        available = (catalogue.release_day <= day) & ~seen
        age = np.maximum(day - catalogue.release_day, 0)
        # A release is watched most in its first weeks; the catalogue's tail never is.
        weight = catalogue.appeal * (1.0 + 6.0 * np.exp(-age / 40.0)) * taste[catalogue.genre] * available
        previous = -1
        for _ in range(size):
            if weight.sum() <= 0:
                break
            follow_up = catalogue.sequel[previous] if previous >= 0 else -1
            if follow_up >= 0 and available[follow_up] and not seen[follow_up] and rng.random() < 0.6:
                item = int(follow_up)
            elif previous >= 0 and rng.random() < 0.35:
                # Within a sitting, one title leads to another of its genre.
                same = weight * (catalogue.genre == catalogue.genre[previous])
                item = int(rng.choice(len(weight), p=same / same.sum())) if same.sum() > 0 else -1
            else:
                item = -1
            if item < 0:
                item = int(rng.choice(len(weight), p=weight / weight.sum()))
            seen[item] = True
            available[item] = False
            weight[item] = 0.0
            affinity = np.log(taste[catalogue.genre[item]] * len(taste))
            stars = 3.3 + bias + 0.6 * catalogue.quality[item] + 0.35 * affinity + rng.normal(0.0, 0.7)
            out.append((item, float(np.clip(np.round(stars * 2) / 2, 0.5, 5.0)), second))
            second += int(rng.integers(20, 400))
            previous = item
    return out


def ratings_frame(shape: RatingsShape = RatingsShape()) -> pd.DataFrame:
    rng = np.random.default_rng(shape.seed)
    catalogue = build_catalogue(shape, rng)
    days = shape.years * 365
    counts = np.minimum(
        5 + rng.lognormal(np.log(shape.median_ratings_per_user), 1.0, shape.users).astype(int), shape.items // 3
    )
    rows: list[tuple[int, int, float, int]] = []
    for user in range(shape.users):
        taste = rng.dirichlet(np.full(shape.genres, 0.3)) + 1e-3
        first_day = int(rng.integers(0, days - 60))
        for item, stars, second in _user_ratings(
            catalogue, taste, rng.normal(0.0, 0.4), int(counts[user]), first_day, days, rng
        ):
            rows.append((user + 1, item + 1, stars, second))
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    epoch = int(pd.Timestamp(shape.start, tz="UTC").timestamp())
    frame["timestamp"] += epoch
    return frame.sort_values(["userId", "timestamp"], kind="stable", ignore_index=True)


def write_ratings_csv(path: Path, shape: RatingsShape = RatingsShape()) -> Path:
    ratings_frame(shape).to_csv(path, index=False)
    return path


def describe(frame: pd.DataFrame) -> dict[str, float]:
    """The figures public datasets are described by, to compare this log with them."""
    per_user = frame.groupby("userId").size()
    per_item = frame["movieId"].value_counts()
    top = per_item.iloc[: max(1, len(per_item) // 100)].sum() / len(frame)
    days = pd.to_datetime(frame["timestamp"], unit="s").dt.normalize()
    return {
        "ratings": len(frame),
        "users": int(frame["userId"].nunique()),
        "items": int(frame["movieId"].nunique()),
        "days_with_ratings": int(days.nunique()),
        "span_days": int((days.max() - days.min()).days) + 1,
        "ratings_per_user_median": float(per_user.median()),
        "ratings_per_user_max": int(per_user.max()),
        "share_of_ratings_on_top_1pct_items": float(top),
        "density": len(frame) / (frame["userId"].nunique() * frame["movieId"].nunique()),
        "share_rated_4_or_more": float((frame["rating"] >= 4).mean()),
    }
