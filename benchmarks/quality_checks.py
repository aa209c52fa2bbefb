"""Great Expectations suite on cleaned_events vs the same rules written as plain pandas.

    python -m benchmarks.quality_checks [--events 10000000] [--repeats 3]

Both sides validate the same in-memory cleaned frame (generated, then cleaned by the platform's
own `clean_events`), evaluating every rule of `cleaned_events_rules` and counting violations.
Reported: median seconds of `repeats` runs each, and GX time as a ratio to pandas.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from algo_platform.assets.events import clean_events
from algo_platform.core.schema import EVENT_TYPES
from algo_platform.ingest.datagen import build_world, generate_day
from algo_platform.quality.contracts import cleaned_events_rules
from algo_platform.quality.dimensions import day_bounds
from algo_platform.resources.data_quality import DataQuality

DAY = dt.date(2026, 11, 20)


def pandas_checks(frame: pd.DataFrame, day: dt.date) -> dict[str, int]:
    """The cleaned_events suite, rule for rule, as plain pandas (violations per rule)."""
    start, end = day_bounds(day)
    watch = frame["watch_ms"]
    return {
        "row_count": int(len(frame) < 1),
        **{f"not_null_{c}": int(frame[c].isna().sum()) for c in ("event_id", "user_id", "item_id", "ts")},
        "unique_event_id": int(frame["event_id"].duplicated(keep=False).sum()),
        "event_type_in_set": int((~frame["event_type"].isin(EVENT_TYPES)).sum()),
        "watch_ms_min": int((watch < 0).sum()),
        "duration_min": int((frame["item_duration_ms"] < 1).sum()),
        "ts_in_day": int(((frame["ts"] < start) | (frame["ts"] >= end)).sum()),
        "watch_ms_max": int((watch > 6 * 3_600_000).sum()),
        "watch_ms_not_null": int(watch.isna().sum()),
    }


def timed(function, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/quality_checks.json")
    args = parser.parse_args()

    world = build_world(n_users=max(args.events // 10, 100), n_items=max(args.events // 25, 200), seed=0)
    raw_table = generate_day(world, DAY, args.events, np.random.default_rng(0))
    raw = raw_table.to_pandas(types_mapper={__import__("pyarrow").int64(): pd.Int64Dtype()}.get)
    raw["source_file"] = "bench"
    cleaned, _ = clean_events(raw, DAY, dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    del raw, raw_table

    quality = DataQuality()
    rules = cleaned_events_rules(DAY)
    quality.validate(cleaned.head(1000), rules, "warm-up")  # GX import and context set-up, once per process
    gx_median, gx_times = timed(lambda: quality.validate(cleaned, rules, "cleaned_events_suite"), args.repeats)
    pd_median, pd_times = timed(lambda: pandas_checks(cleaned, DAY), args.repeats)
    result = {
        "what": "cleaned_events suite (12 rules) on an in-memory cleaned frame; GX 1.x vs plain pandas",
        "rows": len(cleaned),
        "repeats": args.repeats,
        "gx_seconds_median": round(gx_median, 3),
        "pandas_seconds_median": round(pd_median, 3),
        "ratio_gx_to_pandas": round(gx_median / pd_median, 3),
        "target_ratio": 1.5,
        "gx_seconds_all": [round(t, 3) for t in gx_times],
        "pandas_seconds_all": [round(t, 3) for t in pd_times],
    }
    print(json.dumps(result, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
