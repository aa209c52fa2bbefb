"""What the reliability fixes cost: the landing-zone sensor tick and the raw collision scan.

`python -m benchmarks.landing_scan` prints a Markdown table and writes `results/landing_scan.json`.

- Sensor tick: `scan_landing_zone` over already-ingested files (100 per day folder) plus 10 new
  ones, against the floor any tick that notices in-place writes must pay: `os.scandir` + `lstat`
  of every file (no hashing, no cursor). 1k, 10k and 100k files show how the cost grows.
- Collision scan: `raw_collisions_of_file` (the raw_events step) on a generated raw day's Parquet
  file, against `clean_parquet` on the same file (the cleaning step that follows in the same run),
  at 1M and 10M events.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import partial
from pathlib import Path

from benchmarks.suite import median_seconds

RESULTS = Path(__file__).parent / "results"


def _lstat_everything(root: str) -> int:
    count = 0
    with os.scandir(root) as days:
        for day in days:
            with os.scandir(day.path) as files:
                for file in files:
                    file.stat(follow_symlinks=False)
                    count += 1
    return count


def sensor_rows(file_counts=(1_000, 10_000, 100_000)) -> list[dict]:
    from algo_platform.jobs import automation

    rows = []
    real_clock = automation._now_ns
    automation._now_ns = lambda: real_clock() + 3_600_000_000_000  # every file long settled
    try:
        for files in file_counts:
            with tempfile.TemporaryDirectory() as root:
                events = Path(root) / "landing" / "events"
                days = files // 100
                for number in range(days):
                    year, month, day = 2000 + number // 336, 1 + number // 28 % 12, 1 + number % 28
                    folder = events / f"{year:04d}-{month:02d}-{day:02d}"
                    folder.mkdir(parents=True, exist_ok=True)
                    for part in range(100):
                        (folder / f"part-{part:04d}.parquet").write_bytes(b"x")
                cursor = automation.scan_landing_zone(root, None).cursor
                newest = sorted(events.iterdir())[-1]
                for number in range(10):
                    (newest / f"new-{number}.parquet").write_bytes(b"x")
                ours = median_seconds(partial(automation.scan_landing_zone, root, cursor), 5)
                floor = median_seconds(partial(_lstat_everything, str(events)), 5)
                rows.append({"what": f"sensor tick, {files:,} files", "ours_s": ours, "baseline_s": floor})
    finally:
        automation._now_ns = real_clock
    return rows


def collision_rows(event_counts=(1_000_000, 10_000_000)) -> list[dict]:
    import pyarrow.parquet as pq

    from algo_platform.engines.polars.cleaning import clean_parquet, raw_collisions_of_file
    from benchmarks.suite import DAY, NOW, raw_table

    rows = []
    for events in event_counts:
        with tempfile.TemporaryDirectory() as folder:
            raw_path = Path(folder) / "raw.parquet"
            pq.write_table(raw_table(events, defect_rate=0.01), raw_path)
            ours = median_seconds(partial(raw_collisions_of_file, raw_path), 3)
            cleaning = median_seconds(partial(clean_parquet, raw_path, DAY, NOW), 3)
        rows.append({"what": f"raw collision scan, {events:,} events", "ours_s": ours, "baseline_s": cleaning})
    return rows


def main() -> None:
    rows = sensor_rows() + collision_rows()
    lines = ["| measurement | ours | baseline | ratio |", "|---|---|---|---|"]
    for row in rows:
        row["ratio"] = row["ours_s"] / row["baseline_s"]
        lines.append(f"| {row['what']} | {row['ours_s']:.3f} s | {row['baseline_s']:.3f} s | {row['ratio']:.2f}x |")
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "landing_scan.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
