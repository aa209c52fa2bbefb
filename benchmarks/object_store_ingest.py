"""One day's ingest on local disk and on an S3 server, same data, same run.

`python -m benchmarks.object_store_ingest [--events 100000 1000000] [--repeats 3]` prints Markdown
and writes `results/object_store_ingest.json`. The S3 server is moto in server mode, started as
its own process on 127.0.0.1 (so it does not share the benchmark's interpreter lock); the
platform reaches it through s3fs with credentials from the environment, as a deployment does.
The ingest is the project's ingest job (raw -> cleaned -> features, with their checks), in
process; the baseline is the same job on a local folder. Best of `repeats` runs each.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DAY = "2026-11-20"
PROJECT = "bench"


def start_s3_server() -> tuple[subprocess.Popen, dict[str, str]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    environment = {
        "AWS_ACCESS_KEY_ID": secrets.token_hex(10),
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    return server, environment


def ingest_seconds(root: str, events: int, repeats: int) -> float:
    import datetime as dt

    import dagster as dg

    from algo_platform.core.project import parse_project
    from algo_platform.core.settings import Settings
    from algo_platform.definitions import build_project_definitions
    from algo_platform.ingest.datagen import generate

    settings = Settings(env="local", storage_root=root)
    generate(settings.layout.project(PROJECT).root, 1, events, seed=1, end_date=dt.date.fromisoformat(DAY))
    project = parse_project({"name": PROJECT, "owners": ["team:bench"], "partitions_start": "2026-01-01"}, "bench")
    job = build_project_definitions(project, settings).resolve_job_def(f"{PROJECT}_ingest_job")
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
            started = time.perf_counter()
            assert job.execute_in_process(partition_key=DAY, instance=instance).success
            best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    server, environment = start_s3_server()
    os.environ.update(environment)
    rows = []
    try:
        import boto3

        bucket = f"bench-{secrets.token_hex(4)}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        with tempfile.TemporaryDirectory() as folder:
            ingest_seconds(f"{folder}/warm-up", 1_000, 1)  # imports and first-run caches, outside the figures
            for events in args.events:
                local = ingest_seconds(f"{folder}/local-{events}", events, args.repeats)
                s3 = ingest_seconds(f"s3://{bucket}/s3-{events}", events, args.repeats)
                rows.append({"events": events, "local_seconds": local, "s3_seconds": s3, "s3_vs_local": s3 / local})
                print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait()
    lines = [
        f"One day's ingest job (raw, cleaned, features and their checks), best of {args.repeats}",
        "",
        "| events | local disk | S3 server (moto, 127.0.0.1) | S3 / local |",
        "|---|---|---|---|",
        *(
            f"| {r['events']:,} | {r['local_seconds']:.2f} s | {r['s3_seconds']:.2f} s | {r['s3_vs_local']:.2f}x |"
            for r in rows
        ),
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "object_store_ingest.json").write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
