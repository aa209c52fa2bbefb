"""The data page at 100, 1,000 and 8,000 days, and what the profile adds to an ingest.

`python -m benchmarks.data_page [--days 100,1000,8000] [--ingest-events 100000]` prints one line
per figure and writes results/data_page.json. Needs the dev extra and Debian's chromium.

Page: a project's history of N days, generated, cleaned and profiled by the platform's own
functions (tests/support/profiles.py; a long-tailed volume of about 300 events a day), behind a
real `algo-platform webserver`. Per size:
- the server's response to `/platform/data/<p>`: cold (the rollup built from N partition files),
  warm (nothing changed: one listing, cached figures), and after one earlier day was stored again
  (that partition re-read, the figures recomputed); the baseline is the signed-in `/platform`
  page of the same server, measured in the same run;
- Chromium: milliseconds from navigation start until every chart is drawn (`data-charts-drawn`),
  warm server, best of three.

Ingest: `<p>_ingest_job` on D days of generated events with and without `data_profile` (the same
days, alternating, best of five each): the ratio is what the profile costs an ingest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import requests

RESULTS = Path(__file__).parent / "results" / "data_page.json"
END = dt.date(2026, 11, 30)


def _timed_get(session: requests.Session, url: str) -> float:
    start = time.perf_counter()
    answer = session.get(url, timeout=300)
    answer.raise_for_status()
    return time.perf_counter() - start


def _chromium_ms(driver, url: str) -> int:
    driver.get(url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        drawn = driver.find_element("tag name", "body").get_attribute("data-charts-drawn")
        if drawn:
            return int(drawn)
        time.sleep(0.05)
    raise TimeoutError(f"{url}: charts not drawn in 120 s")


def page_rows(sizes: list[int], workdir: Path) -> list[dict]:
    from tests.support.browser import chromium
    from tests.support.factories import PROJECT
    from tests.support.profiles import write_profiles
    from tests.support.web_platform import start_web_platform

    largest = max(sizes)
    source = workdir / "profiles"
    started = time.perf_counter()
    write_profiles(str(source), largest, 300, end=END)
    print(f"profiles of {largest:,} days written in {time.perf_counter() - started:.0f} s", flush=True)
    files = sorted((source / "data_profile").iterdir())
    rows = []
    driver = chromium()
    try:
        for days in sizes:

            def prepare(env: dict, days=days) -> None:
                folder = Path(env["ALGO_PLATFORM_STORAGE"]) / "projects" / PROJECT / "data_profile"
                folder.mkdir(parents=True)
                for file in files[-days:]:
                    shutil.copy(file, folder / file.name)

            (workdir / f"web-{days}").mkdir()
            web = start_web_platform(workdir / f"web-{days}", prepare=prepare)
            try:
                client = web.client("vic")
                url = f"{web.base}/platform/data/{PROJECT}"
                cold = _timed_get(client.http, url)
                warm = min(_timed_get(client.http, url) for _ in range(5))
                baseline = min(_timed_get(client.http, f"{web.base}/platform") for _ in range(5))
                touched = Path(web.env["ALGO_PLATFORM_STORAGE"]) / "projects" / PROJECT / "data_profile"
                earlier = sorted(touched.iterdir())[len(files[-days:]) // 2]
                earlier.write_bytes(earlier.read_bytes())  # stored again: a new stamp
                changed = _timed_get(client.http, url)
                size = len(client.http.get(url, timeout=300).content)
                driver.delete_all_cookies()
                driver.get(f"{web.base}/auth/sign-in")
                for name, value in client.http.cookies.items():
                    driver.add_cookie({"name": name, "value": value})
                chrome = [_chromium_ms(driver, url) for _ in range(3)]
                rollup = Path(web.env["ALGO_PLATFORM_STORAGE"]) / "projects" / PROJECT / "data_profile_rollup.parquet"
                row = {
                    "days": days,
                    "server_cold_s": round(cold, 3),
                    "server_warm_s": round(warm, 4),
                    "server_one_day_changed_s": round(changed, 3),
                    "baseline_platform_page_s": round(baseline, 4),
                    "warm_vs_baseline": round(warm / baseline, 2),
                    "page_bytes": size,
                    "rollup_bytes": rollup.stat().st_size,
                    "chromium_all_charts_drawn_ms": min(chrome),
                    "chromium_runs_ms": chrome,
                }
            finally:
                web.processes.stop_all()
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        driver.quit()
    return rows


def ingest_rows(days: int, events: int, workdir: Path, repeats: int = 5) -> dict:
    import dagster as dg

    from algo_platform.core.settings import Settings
    from algo_platform.definitions import build_project_definitions
    from algo_platform.ingest.datagen import generate
    from tests.support.factories import PROJECT, make_project

    settings = Settings(env="local", storage_root=str(workdir / "ingest-storage"))
    project = make_project()
    generate(settings.layout.project(PROJECT).root, days, events, seed=5, defect_rate=0.02, end_date=END)
    defs = build_project_definitions(project, settings)
    job = defs.resolve_implicit_global_asset_job_def()
    first = (END - dt.timedelta(days=days - 1)).isoformat()
    ingest = [
        dg.AssetKey([PROJECT, name]) for name in ("raw_events", "cleaned_events", "user_features", "item_features")
    ]
    timings: dict[str, list[float]] = {"without": [], "with": []}
    with dg.instance_for_test() as instance:
        for _ in range(repeats):
            for which, keys in (("without", ingest), ("with", [*ingest, dg.AssetKey([PROJECT, "data_profile"])])):
                start = time.perf_counter()
                result = job.execute_in_process(
                    instance=instance,
                    asset_selection=keys,
                    tags={
                        "dagster/asset_partition_range_start": first,
                        "dagster/asset_partition_range_end": END.isoformat(),
                    },
                )
                assert result.success
                timings[which].append(time.perf_counter() - start)
                print(f"ingest {which} data_profile: {timings[which][-1]:.2f} s", flush=True)
    best = {which: min(values) for which, values in timings.items()}
    return {
        "days": days,
        "events_per_day": events,
        "ingest_without_profile_s": round(best["without"], 2),
        "ingest_with_profile_s": round(best["with"], 2),
        "ratio": round(best["with"] / best["without"], 3),
        "median_ratio": round(statistics.median(timings["with"]) / statistics.median(timings["without"]), 3),
        "runs_s": {k: [round(v, 2) for v in values] for k, values in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="100,1000,8000")
    parser.add_argument("--ingest-days", type=int, default=4)
    parser.add_argument("--ingest-events", type=int, default=150_000)
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true", help="keep the ingest figures of the last run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="algo-platform-data-page-") as folder:
        workdir = Path(folder)
        if args.skip_ingest:
            ingest = json.loads(RESULTS.read_text())["ingest"]
        else:
            ingest = ingest_rows(args.ingest_days, args.ingest_events, workdir)
            print(json.dumps(ingest), flush=True)
        pages = [] if args.skip_page else page_rows([int(d) for d in args.days.split(",")], workdir)
    RESULTS.write_text(json.dumps({"page": pages, "ingest": ingest, "machine": "2 cores"}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
