"""The release report's own work at scale (issue 43): one day's judgement of a release whose stage
has run `days` days for `users` served users a day.

`python -m benchmarks.release_report [--users 1000000] [--days 14]` times, for the last day, what
`release_report` does: join the day's served lists (20 items each) with the day's events
(`_outcomes`), then group the stage's user-days per user and arm and run the statistics
(`_arm_effects`). The earlier days' outcomes are in memory here (the asset reads them from its own
Parquet partitions). Reported as seconds and as a ratio to the join alone, at two sizes, so the
growth with users x days shows. Results: `results/release_report.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from algo_platform.assets.release import _arm_effects, _outcomes
from algo_platform.core.project import Release

RESULTS = Path(__file__).parent / "results"


def day_of(rng: np.random.Generator, users: int, items: int = 50_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    user_ids = np.arange(users)
    arm = np.where(rng.random(users) < 0.25, "challenger", "champion")
    lists = rng.integers(0, items, (users, 20))
    served = pd.DataFrame({"user_id": user_ids, "item_ids": list(lists), "arm": arm, "model_version": "1",
                           "experiment": "p/next_item/v2", "stage_percent": 25.0,
                           "activity": rng.gamma(2.0, 2.0, users)})  # fmt: skip
    active = rng.random(users) < 0.6
    plays = rng.poisson(3, users) * active
    event_users = np.repeat(user_ids, plays)
    from_list = rng.random(len(event_users)) < 0.2
    picked = lists[event_users, rng.integers(0, 20, len(event_users))]
    event_items = np.where(from_list, picked, rng.integers(0, items, len(event_users)))
    events = pd.DataFrame({"user_id": event_users, "item_id": event_items, "event_type": "play"})
    return served, events


def measure(users: int, days: int) -> dict:
    rng = np.random.default_rng(0)
    release = Release()
    earlier = []
    for _ in range(days - 1):
        served, events = day_of(rng, users)
        earlier.append(_outcomes(served, events, ["play"]))
    served, events = day_of(rng, users)
    started = time.perf_counter()
    today = _outcomes(served, events, ["play"])
    join_seconds = time.perf_counter() - started
    effects = _arm_effects(pd.concat([*earlier, today], ignore_index=True), release)
    total = time.perf_counter() - started
    return {"users": users, "days": days, "join_seconds": join_seconds, "report_seconds": total,
            "ratio_to_join": total / join_seconds, "effect": effects[release.primary_metric].difference}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--out", default=str(RESULTS / "release_report.json"))
    args = parser.parse_args(argv)
    rows = [measure(args.users // 10, args.days), measure(args.users, args.days)]
    for row in rows:
        print(json.dumps(row))
    Path(args.out).write_text(json.dumps({"machine": "2 CPU cores", "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
