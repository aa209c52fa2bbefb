"""The Spark engine in local mode against the polars engine, on one machine, same raw day.

`python -m benchmarks.spark_vs_polars [--events 1000000,10000000] [--s3]` prints a Markdown table
and writes `results/spark_vs_polars.json` (with `--s3`: `results/spark_on_object_store.json`).
Each side runs in a fresh process, Parquet to Parquet: read the raw day, clean, write the cleaned
table, compute and write user and item features.
Spark's side is split where its time goes: starting the JVM and session, cleaning (dedup
window, collision join, drop counts, sort, write), and the two feature tables.

With `--s3`, Spark also runs the same day with its tables on an S3 server (moto, its own process
on 127.0.0.1), read and written through the job's object-store data source
(`engines/spark_storage.py`), and that data source on local disk (what it costs without the
server), against Spark's own Parquet on local disk in the same run.
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

if how.startswith("spark"):
    from algo_platform.engines.spark import session as engine
    from algo_platform.engines.spark import storage
    spark = engine.session("bench", master="local[*]", conf={"spark.driver.memory": "8g"})
    spark.sparkContext.setLogLevel("ERROR")
    phase("start JVM and session")
    # spark_data_source: the object-store data source on local disk, without the S3 server's cost.
    read, write = storage.read, storage.write
    if how == "spark_data_source":
        read, write = storage.read_through_data_source, storage.write_through_data_source
    cleaned, drops = engine.clean(read(spark, raw_path), DAY, NOW)
    write(cleaned, f"{folder}/cleaned")
    phase("clean + write")
    stored = read(spark, f"{folder}/cleaned")
    write(engine.user_features(stored), f"{folder}/users")
    phase("user features + write")
    write(engine.item_features(stored), f"{folder}/items")
    phase("item features + write")
else:
    import pyarrow.parquet as pq
    from upath import UPath
    from algo_platform.assets.features import build_item_features, build_user_features
    from algo_platform.engines.polars.cleaning import clean_table
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


def measure(sizes: list[int], s3: bool = False) -> list[dict]:
    rows = []
    for events in sizes:
        with tempfile.TemporaryDirectory() as folder:
            raw_path = f"{folder}/raw.parquet"
            write_raw_day(raw_path, events)
            for how in ("polars", "spark", *(("spark_data_source",) if s3 else ())):
                with tempfile.TemporaryDirectory() as out:
                    measured = json.loads(child_output(CHILD, how, raw_path, out))
                rows.append({"events": events, "how": how, **measured})
                print(json.dumps(rows[-1]), flush=True)
            if s3:
                rows.append({"events": events, "how": "spark_s3", **_on_s3(CHILD, raw_path, events)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _on_s3(child: str, raw_path: str, events: int) -> dict:
    """The Spark side with the raw day and every table on an S3 server of its own."""
    import boto3

    from benchmarks.object_store_ingest import start_s3_server

    server, environment = start_s3_server()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=environment["AWS_ENDPOINT_URL"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            region_name=environment["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket="bench")
        client.upload_file(raw_path, "bench", f"{events}/raw.parquet")
        raw = f"s3://bench/{events}/raw.parquet"
        return json.loads(child_output(child, "spark_s3", raw, f"s3://bench/{events}", env=environment))
    finally:
        server.terminate()
        server.wait()


def table(rows: list[dict]) -> str:
    lines = ["| events | engine | total | vs polars | where the time goes |", "|---|---|---|---|---|"]
    polars = {row["events"]: row["seconds"] for row in rows if row["how"] == "polars"}
    spark = {row["events"]: row["seconds"] for row in rows if row["how"] == "spark"}
    for row in rows:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in row["phases"].items())
        ratio = f"{row['seconds'] / polars[row['events']]:.2f}x"
        if row["how"] in ("spark_s3", "spark_data_source"):
            ratio += f" ({row['seconds'] / spark[row['events']]:.2f}x Spark on disk)"
        lines.append(f"| {row['events']:,} | {row['how']} | {row['seconds']:.1f} s | {ratio} | {phases} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,10000000")
    parser.add_argument("--s3", action="store_true", help="also run Spark with its tables on an S3 server")
    arguments = parser.parse_args()
    rows = measure([int(float(n)) for n in arguments.events.split(",")], arguments.s3)
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    name = "spark_on_object_store.json" if arguments.s3 else "spark_vs_polars.json"
    (RESULTS / name).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
