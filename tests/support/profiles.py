"""A project's stored profiles without running its ingest: generated days, cleaned and profiled by
the platform's own functions, written where `data_profile` stores them. For the data page's tests
and benchmark, where thousands of days through Dagster would take the time of a backfill."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.atomic import write_atomically
from algo_platform.core.layout import ProjectLayout
from algo_platform.engines.polars.cleaning import clean_table
from algo_platform.ingest.datagen import build_world, generate_day, plant_defects, with_ratings
from algo_platform.profiles.compute import profile_of
from algo_platform.profiles.rollup import PROFILE_ASSET

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def write_profiles(
    project_root: str,
    days: int,
    events_per_day: int,
    end: dt.date = dt.date(2026, 11, 30),
    defect_rate: float = 0.02,
    seed: int = 7,
    users: int = 400,
    items: int = 300,
) -> list[str]:
    """`days` day partitions ending at `end`, with a rating column and planted defects; their keys."""
    world = build_world(users, items, seed)
    folder = UPath(ProjectLayout(project_root).stored_tables(PROFILE_ASSET))
    keys = []
    for offset in range(days - 1, -1, -1):
        day = end - dt.timedelta(days=offset)
        rng = np.random.default_rng([seed, day.toordinal()])
        # A long-tailed volume: most days small, a few large.
        n = max(1, int(events_per_day * rng.pareto(3.0) * 2 / 3) or 1)
        raw, _ = plant_defects(generate_day(world, day, n, rng), defect_rate, rng)
        raw = with_ratings(raw, "rating", rng)
        raw = raw.append_column("source_file", pl.Series([f"events-{day}.parquet"] * raw.num_rows).to_arrow())
        cleaned, dropped = clean_table(raw, day, NOW)
        quarantined = [(f"{day}/broken-{day}.csv", "unreadable: not valid CSV")] if offset % 97 == 13 else []
        table = profile_of(
            pl.from_arrow(cleaned).lazy(),
            {"rating": "float64"},
            day,
            rows_in=raw.num_rows,
            dropped=dropped,
            quality={
                "quality_score": 0.97,
                "accuracy": 0.99,
                "completeness": 1.0,
                "relevance": 0.99,
                "timeliness": 0.99,
            },  # fmt: skip
            quarantined=quarantined,
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        write_atomically(folder / f"{day}.parquet", buffer.getvalue())
        keys.append(day.isoformat())
    return keys
