"""The benchmark harness runs end to end on tiny data (it proves the harness, it measures nothing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from algo_platform.models import FAMILIES

REPO = Path(__file__).resolve().parents[2]
ROWS = [
    "whole retrain path",
    "per-run fixed cost",
    "ours vs DuckDB",
    "ours vs polars",
    "quality checks",
    "peak memory",
    "sensor tick",
    "trainer samples/s",
]


def test_bench_quick_writes_every_row(tmp_path):
    env = {**os.environ, "ALGO_PLATFORM_STORAGE": str(tmp_path / "storage")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--quick", "--events", "6000", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "bench-quick.json").read_text())  # never the tracked results
    names = [row["what"] for row in results["rows"]]
    for expected in ROWS:
        assert any(expected in name for name in names), expected
    for row in results["rows"]:
        assert row["ours"] > 0 and (row["baseline"] is None or row["baseline"] > 0)
    table = (tmp_path / "bench-quick.md").read_text()
    assert table.count("\n|") >= len(ROWS) + 1 and "| ratio |" in table


def test_the_ratings_benchmark_imports_a_years_long_log_and_scores_both_families(tmp_path):
    out = tmp_path / "ratings.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ratings_leave_last_out", "--users", "300", "--items", "300"]
        + ["--epochs", "1", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads(out.read_text())
    # Every rating went through the import and cleaning; each user with 3+ liked titles holds one out.
    assert summary["imported_rows"] == summary["cleaned_rows"] == summary["log"]["ratings"]
    assert summary["landed_days"] > 365 and 0 < summary["held_out_users"] <= summary["log"]["users"]
    assert [row["family"] for row in summary["rows"]] == list(FAMILIES)  # every built-in family
    for row in summary["rows"]:
        assert row["targets"] == summary["held_out_users"] and 0 <= row["ndcg@10"] <= row["hr@10"] <= 1
