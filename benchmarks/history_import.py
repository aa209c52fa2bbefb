"""Getting years of history in: `algo-platform import`, then the ingest backfill.

`python -m benchmarks.history_import [--rows 1000000 10000000] [--days 1000]` prints Markdown and
writes `results/history_import.json`.

- Import: a ratings-style CSV (sorted by user, epoch seconds) over 4,000 days, imported in a
  child process; wall time and peak RSS, against reading the same file whole with pyarrow
  (`pyarrow.csv.read_csv`, the floor for a reader that holds the file) in the same run. Bounded
  memory shows as a peak that stays flat while the file grows tenfold.
- Backfill: `days` small days (25 events each) ingested in process, as one-day runs (a sample
  of 20, scaled) and as range runs of `data.days_per_run` = 250 days: total time and cost per day.
  A daemon adds a process start per run (seconds), which range runs pay once per 250 days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
MAPPING = {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}
RATING = {"rating": "float64"}


def ratings_file(path: Path, rows: int, days: int = 4_000) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    first = int(dt.datetime(2010, 1, 1, tzinfo=dt.UTC).timestamp())
    with pacsv.CSVWriter(
        path,
        pa.schema(
            [("userId", pa.int64()), ("movieId", pa.int64()), ("rating", pa.float64()), ("timestamp", pa.int64())]
        ),
    ) as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            users = np.sort(rng.integers(1, 200_000, n))  # sorted by user, as public ratings logs are
            writer.write_table(
                pa.table(
                    {
                        "userId": users,
                        "movieId": rng.integers(1, 50_000, n),
                        "rating": rng.choice([0.5, 1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0], n),
                        "timestamp": rng.integers(first, first + days * 86_400, n),
                    }
                )
            )
    return path


def _child(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `code` run in a fresh interpreter."""
    script = (
        "import resource, time\n"
        "start = time.perf_counter()\n"
        f"{code}\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wall, rss = out.stdout.split()[-2:]
    return float(wall), float(rss)


def import_rows(row_counts: list[int], memory_mb: int) -> list[dict]:
    rows = []
    for count in row_counts:
        with tempfile.TemporaryDirectory() as scratch:
            source = ratings_file(Path(scratch) / "ratings.csv", count)
            ours = _child(
                "from algo_platform.ingest.importer import import_events\n"
                f"import_events({str(source)!r}, {scratch + '/storage'!r}, {MAPPING!r}, {RATING!r}, '2000-01-01', "
                f"memory_bytes={memory_mb << 20})"
            )
            whole = _child(f"import pyarrow.csv as c\nc.read_csv({str(source)!r})")
            rows.append(
                {
                    "what": f"import {count:,} rows over 4,000 days ({source.stat().st_size / 2**20:,.0f} MiB CSV), "
                    f"--memory-mb {memory_mb}",
                    "ours_s": ours[0],
                    "ours_peak_mib": ours[1],
                    "read_whole_s": whole[0],
                    "read_whole_peak_mib": whole[1],
                }
            )
    return rows


def backfill_rows(days: int, per_run: int = 250) -> list[dict]:
    import warnings

    import dagster as dg
    import numpy as np
    import pandas as pd

    from algo_platform.core.project import parse_project
    from algo_platform.core.settings import Settings
    from algo_platform.definitions import build_project_definitions
    from algo_platform.ingest.importer import import_events

    warnings.filterwarnings("ignore")
    start = dt.date(2015, 1, 1)
    last = start + dt.timedelta(days=days - 1)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        rng = np.random.default_rng(1)
        n = days * 25
        ts = pd.Timestamp(start, tz="UTC").value // 10**9 + rng.integers(0, days * 86_400, n)
        source = Path(scratch) / "ratings.csv"
        pd.DataFrame(
            {"userId": rng.integers(1, 500, n), "movieId": rng.integers(1, 3_000, n), "rating": 4.0, "timestamp": ts}
        ).to_csv(source, index=False)
        for label, days_per_run in (("one day per run", 1), (f"{per_run} days per run", per_run)):
            settings = Settings(env="local", storage_root=f"{scratch}/{days_per_run}")
            project = parse_project(
                {
                    "name": "bench",
                    "owners": ["team:bench"],
                    "partitions_start": start.isoformat(),
                    "data": {"extra_columns": RATING, "days_per_run": days_per_run},
                },
                "bench",
            )
            import_events(source, settings.layout.project("bench").root, MAPPING, RATING, start.isoformat())
            job = build_project_definitions(project, settings).resolve_job_def("bench_ingest_job")
            with dg.instance_for_test() as instance:
                if days_per_run == 1:
                    sample = min(days, 20)
                    began = time.perf_counter()
                    for offset in range(sample):
                        day = (start + dt.timedelta(days=offset)).isoformat()
                        job.execute_in_process(partition_key=day, instance=instance)
                    per_day = (time.perf_counter() - began) / sample
                else:
                    began = time.perf_counter()
                    for first in range(0, days, days_per_run):
                        range_start = start + dt.timedelta(days=first)
                        range_end = min(last, range_start + dt.timedelta(days=days_per_run - 1))
                        job.execute_in_process(
                            instance=instance,
                            tags={
                                "dagster/asset_partition_range_start": range_start.isoformat(),
                                "dagster/asset_partition_range_end": range_end.isoformat(),
                            },
                        )
                    per_day = (time.perf_counter() - began) / days
            rows.append(
                {"what": f"ingest {days:,} days of 25 events, {label}", "per_day_s": per_day, "total_s": per_day * days}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=1_000, help="days to backfill; 0 skips the backfill")
    parser.add_argument("--memory-mb", type=int, default=128, help="the import's memory budget")
    args = parser.parse_args()
    results = RESULTS / "history_import.json"
    previous = json.loads(results.read_text()) if results.exists() else {}
    imports = import_rows(args.rows, args.memory_mb) if args.rows else previous.get("import", [])
    backfills = backfill_rows(args.days) if args.days else previous.get("backfill", [])
    RESULTS.mkdir(exist_ok=True)
    results.write_text(json.dumps({"import": imports, "backfill": backfills}, indent=2))
    print("| import | ours | peak RSS | read whole (pyarrow) | peak RSS | time ratio |")
    print("|---|---|---|---|---|---|")
    for row in imports:
        print(
            f"| {row['what']} | {row['ours_s']:.1f} s | {row['ours_peak_mib']:,.0f} MiB | {row['read_whole_s']:.1f} s "
            f"| {row['read_whole_peak_mib']:,.0f} MiB | {row['ours_s'] / row['read_whole_s']:.1f}x |"
        )
    print("\n| backfill | per day | total |")
    print("|---|---|---|")
    for row in backfills:
        print(f"| {row['what']} | {row['per_day_s'] * 1000:,.0f} ms | {row['total_s']:,.0f} s |")


if __name__ == "__main__":
    main()
