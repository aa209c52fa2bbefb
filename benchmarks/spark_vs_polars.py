"""The Spark engine in local mode against the polars engine, on one machine, same raw day.

`python -m benchmarks.spark_vs_polars [--events 1000000,10000000]` prints a Markdown table and
writes `results/spark_vs_polars.json`. Each side runs in a fresh process, Parquet to Parquet:
read the raw day, clean, write the cleaned table, compute and write user and item features.
Spark's side is split where its time goes: starting the JVM and session, cleaning (dedup
window, collision join, drop counts, sort, write), and the two feature tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from benchmarks.polars_scaling import write_raw_day
from benchmarks.suite import RESULTS, child_output

CHILD = """
import json, sys, time
from benchmarks.suite import DAY, NOW

how, raw_path, folder = sys.argv[1:]
phases, started = {}, time.perf_counter()

def phase(name):
    global started
    now = time.perf_counter()
    phases[name] = now - started
    started = now

if how == "spark":
    from algo_platform.engines import spark as engine
    spark = engine.session("bench", master="local[*]", conf={"spark.driver.memory": "8g"})
    spark.sparkContext.setLogLevel("ERROR")
    phase("start JVM and session")
    cleaned, drops = engine.clean(spark.read.parquet(raw_path), DAY, NOW)
    cleaned.write.parquet(f"{folder}/cleaned")
    phase("clean + write")
    stored = spark.read.parquet(f"{folder}/cleaned")
    engine.user_features(stored).write.parquet(f"{folder}/users")
    phase("user features + write")
    engine.item_features(stored).write.parquet(f"{folder}/items")
    phase("item features + write")
else:
    import pyarrow.parquet as pq
    from upath import UPath
    from algo_platform.assets.features import build_item_features, build_user_features
    from algo_platform.engines.cleaning import clean_table
    from algo_platform.resources.io_managers import read_table
    raw = read_table(UPath(raw_path))
    phase("read")
    cleaned, drops = clean_table(raw, DAY, NOW)
    pq.write_table(cleaned, f"{folder}/cleaned.parquet")
    phase("clean + write")
    build_user_features(cleaned).to_parquet(f"{folder}/users.parquet")
    phase("user features + write")
    build_item_features(cleaned).to_parquet(f"{folder}/items.parquet")
    phase("item features + write")
print(json.dumps({"phases": phases, "seconds": sum(phases.values()), "dropped": sum(drops.values())}))
"""


def measure(sizes: list[int]) -> list[dict]:
    rows = []
    for events in sizes:
        with tempfile.TemporaryDirectory() as folder:
            raw_path = f"{folder}/raw.parquet"
            write_raw_day(raw_path, events)
            for how in ("polars", "spark"):
                with tempfile.TemporaryDirectory() as out:
                    measured = json.loads(child_output(CHILD, how, raw_path, out))
                rows.append({"events": events, "how": how, **measured})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| events | engine | total | vs polars | where the time goes |", "|---|---|---|---|---|"]
    polars = {row["events"]: row["seconds"] for row in rows if row["how"] == "polars"}
    for row in rows:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in row["phases"].items())
        ratio = row["seconds"] / polars[row["events"]]
        lines.append(f"| {row['events']:,} | {row['how']} | {row['seconds']:.1f} s | {ratio:.2f}x | {phases} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,10000000")
    rows = measure([int(float(n)) for n in parser.parse_args().events.split(",")])
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spark_vs_polars.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
