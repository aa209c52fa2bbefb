"""How the polars data stage grows with the day: time and peak memory at 1M, 10M and 100M events.

`python -m benchmarks.polars_scaling [--events 1000000,10000000,100000000]` prints a Markdown table
and writes `results/polars_scaling.json`. Each measurement runs in a fresh process on the same
generated raw day (Parquet, planted defects), and reports wall time and the process's peak RSS:

- steps: what the cleaned_events and feature steps do: `clean_day` (polars reads the raw file,
  cleans it in memory, or in parts above `large_day.LARGEST_DAY_IN_MEMORY` rows, and computes the
  step's metadata), the cleaned table stored as the IO manager stores it, then user and item
  features from that file with the streaming engine;
- arrow in memory: how the steps worked before (the day read as an Arrow value, `clean_table`,
  features from the cleaned Arrow table; no metadata, nothing written);
- plain polars: the same work written directly in polars (`benchmarks/baselines.py`, no
  collision check, no metadata), from the same file, its cleaned table stored as the steps store
  theirs, as the same-run baseline;
- in parts (streaming): `large_day.clean_file` Parquet to Parquet, then
  `large_day.user_features_of_file` and `item_features_of_file`: memory bounded by the part size,
  not the day.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.suite import DAY, RESULTS, child_output

CHILD = """
import algo_platform  # first, as in Dagster's processes: it sets polars' allocator to return freed memory
import json, sys, time
from pathlib import Path
import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from algo_platform.assets.events import clean_day
from algo_platform.assets.features import feature_frame
from algo_platform.engines.polars.large_day import (
    clean_file, item_features_of_file, user_features_of_file,
)
from algo_platform.resources.data_quality import DataQuality
from benchmarks.baselines import polars_clean_and_features
from benchmarks.suite import DAY, NOW

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))

how, raw_path, folder = sys.argv[1:]
idle = rss("VmRSS")
started = time.perf_counter()
cleaned_path = f"{folder}/cleaned.parquet"
phases = {}
if how == "in_parts":
    drops = clean_file(raw_path, cleaned_path, DAY, NOW)
    users, items = user_features_of_file(cleaned_path), item_features_of_file(cleaned_path)
elif how == "steps":
    cleaned, metadata = clean_day(dg.build_asset_context(), DAY, Path(raw_path), NOW, DataQuality())
    cleaned_at = time.perf_counter()
    if isinstance(cleaned, pa.Table):
        pq.write_table(cleaned, cleaned_path, compression="zstd")  # as the IO manager stores it
    else:  # a day cleaned in parts, to a file of its own
        Path(cleaned.path).replace(cleaned_path)
    del cleaned
    written_at = time.perf_counter()
    drops = {k: v for k, v in metadata.items() if k.startswith("dropped_") and isinstance(v, int)}
    users = feature_frame(user_features_of_file(cleaned_path))
    items = feature_frame(item_features_of_file(cleaned_path))
    phases = {
        "clean_seconds": cleaned_at - started,
        "write_seconds": written_at - cleaned_at,
        "features_seconds": time.perf_counter() - written_at,
    }
elif how == "arrow_in_memory":  # the steps' earlier way: the day as an Arrow value from the IO manager
    from algo_platform.assets.features import build_item_features, build_user_features
    from algo_platform.engines.polars.cleaning import clean_table
    from algo_platform.resources.io_managers import read_table
    from upath import UPath
    cleaned, drops = clean_table(read_table(UPath(raw_path)), DAY, NOW)
    users, items = build_user_features(cleaned), build_item_features(cleaned)
else:  # plain polars stores its cleaned table as the steps do, so both sides do the same work
    cleaned, drops, users, items = polars_clean_and_features(pl.read_parquet(raw_path), DAY, NOW)
    pq.write_table(cleaned, cleaned_path, compression="zstd")
seconds = time.perf_counter() - started
print(json.dumps({**phases, "seconds": seconds, "peak_bytes": rss("VmHWM"), "idle_bytes": idle,
                  "users": len(users), "items": len(items), "dropped": sum(drops.values())}))
"""


def write_raw_day(path: str, events: int, chunk: int = 10_000_000) -> int:
    """A generated raw day of `events` rows written in chunks (a 100M-event day is never whole in
    this process); event ids are unique across chunks, defects planted in each. Its size on disk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from algo_platform.core.schema import with_low_cardinality_encoded
    from algo_platform.ingest.datagen import build_world, generate_day, plant_defects

    world = build_world(max(events // 10, 100), max(events // 25, 200), seed=0)
    rng = np.random.default_rng(0)
    writer = None
    for number, start in enumerate(range(0, events, chunk)):
        table, _ = plant_defects(generate_day(world, DAY, min(chunk, events - start), rng), 0.01, rng)
        ids = pc.binary_join_element_wise(pa.scalar(f"c{number}"), table["event_id"], "-")
        table = table.set_column(0, "event_id", ids)
        table = with_low_cardinality_encoded(
            table.append_column("source_file", pa.array([f"part-{number}"] * len(table)))
        )
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()
    return Path(path).stat().st_size


def _arrow_bytes(raw_path: str) -> int:
    """The raw day's size as read (Arrow), the unit of the memory target."""
    import pyarrow.parquet as pq

    return pq.read_table(raw_path).nbytes


def measure(events_sizes: list[int], in_memory_up_to: int = 10_000_000) -> list[dict]:
    rows = []
    for events in events_sizes:
        with tempfile.TemporaryDirectory() as folder:
            raw_path = f"{folder}/raw.parquet"
            file_bytes = write_raw_day(raw_path, events)
            ways = ["steps", "arrow_in_memory", "plain_polars", "in_parts"]
            ways = ways if events <= in_memory_up_to else ["steps", "in_parts"]
            input_bytes = _arrow_bytes(raw_path) if events <= in_memory_up_to else None
            for how in ways:
                measured = json.loads(child_output(CHILD, how, raw_path, folder))
                sizes = {"file_bytes": file_bytes, "input_bytes": input_bytes}
                rows.append({"events": events, "how": how, **sizes, **measured})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| events | how | time | peak RSS | RSS above idle | input as read (Arrow) | above idle / input "
        "| time vs plain polars |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain = {row["events"]: row["seconds"] for row in rows if row["how"] == "plain_polars"}
    for row in rows:
        ratio = f"{row['seconds'] / plain[row['events']]:.2f}x" if row["events"] in plain else "-"
        above = row["peak_bytes"] - row["idle_bytes"]
        read = f"{row['input_bytes'] / 2**20:,.0f} MiB" if row["input_bytes"] else "-"
        times = f"{above / row['input_bytes']:.1f}x" if row["input_bytes"] else "-"
        lines.append(
            f"| {row['events']:,} | {row['how']} | {row['seconds']:.1f} s | {row['peak_bytes'] / 2**20:,.0f} MiB "
            f"| {above / 2**20:,.0f} MiB | {read} | {times} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,10000000,100000000")
    sizes = [int(float(n)) for n in parser.parse_args().events.split(",")]
    rows = measure(sizes)
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "polars_scaling.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
