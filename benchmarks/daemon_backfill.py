"""A history backfilled by the real daemon: `algo-platform import`, `algo-platform backfill`, then
`dagster-daemon run` until the backfill ends; wall time from the daemon's start.

`python -m benchmarks.daemon_backfill [--days 4000] [--per-run 250]` prints one line and adds it to
`results/daemon_backfill.json`. The platform
is a temporary one set up as the daemon tests set it up (tests/system/test_daemon_e2e.py: a DAGSTER_HOME
with the shipped dagster.yaml, a scaffolded project, its workspace), so this needs the dev extra.
The history has 25 events a day, so the figure is the per-day cost of Dagster and of our steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import tempfile
import time
from pathlib import Path


def main() -> None:
    import dagster as dg
    import numpy as np
    import pandas as pd
    import yaml
    from dagster._core.execution.backfill import BulkActionStatus

    from tests.support.factories import PROJECT
    from tests.support.processes import BIN, WORKSPACE, Processes, cli, temporary_platform

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4_000)
    parser.add_argument("--per-run", type=int, default=250)
    parser.add_argument("--grain", choices=["day", "week", "month"], default="day", help="data.partition")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        env, home = temporary_platform(scratch, window_days=2)
        runs_at_once = yaml.safe_load((home / "dagster.yaml").read_text())["run_coordinator"]["config"][
            "max_concurrent_runs"
        ]
        project_file = scratch / "projects" / PROJECT / "project.yaml"
        text = re.sub(r"days_per_run: \S+", f"days_per_run: {args.per_run}", project_file.read_text(), count=1)
        text = re.sub(r"partition: \S+", f"partition: {args.grain}", text, count=1)
        project_file.write_text(text.replace("partitions_start: 2024-01-01", "partitions_start: 2015-01-01"))
        start = dt.date(2015, 1, 1)
        last = start + dt.timedelta(days=args.days - 1)
        rng = np.random.default_rng(1)
        n = args.days * 25
        seconds = pd.Timestamp(start, tz="UTC").value // 10**9 + rng.integers(0, args.days * 86_400, n)
        source = scratch / "history.csv"
        pd.DataFrame({"uid": rng.integers(1, 500, n), "iid": rng.integers(1, 3_000, n), "when": seconds}).to_csv(
            source, index=False
        )
        mapping = ["--map", "user_id=uid", "--map", "item_id=iid", "--map", "ts=when"]
        cli(env, "algo-platform", "import", str(source), "--project", PROJECT, *mapping)
        span = ["--from", start.isoformat(), "--to", last.isoformat()]
        cli(env, "algo-platform", "backfill", "--project", PROJECT, *span)
        processes = Processes(env, scratch)
        began = time.monotonic()
        try:
            processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
            while True:
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    (backfill,) = instance.get_backfills()
                if backfill.status != BulkActionStatus.REQUESTED:
                    break
                time.sleep(2)
        finally:
            processes.stop_all()
        wall = time.monotonic() - began
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
            partitions = len(instance.get_materialized_partitions(dg.AssetKey([PROJECT, "cleaned_events"])))
    row = {
        "date": dt.date.today().isoformat(),
        "days": args.days,
        "grain": args.grain,
        "days_per_run": args.per_run,
        "runs_at_once": runs_at_once,
        "status": backfill.status.value,
        "runs": len(runs),
        "cleaned_partitions": partitions,
        "wall_seconds": round(wall, 1),
        "ms_per_day": round(wall / args.days * 1000),
    }
    print(
        f"{args.days:,} days by {args.grain}, {args.per_run} per run, {row['runs_at_once']} runs at once: "
        f"{row['status']}, {len(runs)} runs, {partitions:,} partitions of cleaned_events; "
        f"{wall:,.0f} s, {row['ms_per_day']:,} ms per day"
    )
    results = Path(__file__).parent / "results" / "daemon_backfill.json"
    rows = json.loads(results.read_text()) if results.exists() else []
    results.write_text(json.dumps([*rows, row], indent=2) + "\n")


if __name__ == "__main__":
    main()
