"""Side-by-side benchmarks: each row runs our code and a plain baseline in the same process on the
same generated data, and reports the ratio. Run with `algo-platform bench [--events N] [--quick]`.

Timings are medians of `repeats` runs; peak memory is the RSS a child process reached.
"""

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

DAY = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
RESULTS = Path(__file__).resolve().parent / "results"
# The retrain path trains on CPU here: a full softmax over the generator's default catalogue at 2M
# events (80k items) makes one epoch take tens of minutes, so that row uses a fixed catalogue.
RETRAIN_ITEMS = 5_000


@dataclass
class Row:
    what: str
    ours: float
    baseline: float | None
    unit: str
    target: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.baseline if self.baseline else None


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_medians(measures: list[Callable[[], float]], repeats: int) -> list[float]:
    """Median of each measurement, taken in rounds (one of each per round) so that drift over the
    run (allocator growth, the machine's load) falls on every side alike."""
    taken: list[list[float]] = [[] for _ in measures]
    for _ in range(repeats):
        for measure, values in zip(measures, taken, strict=True):
            values.append(measure())
    return [statistics.median(values) for values in taken]


def seconds_of(function: Callable[[], object]) -> Callable[[], float]:
    return lambda: median_seconds(function, 1)


def child_output(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `python -c script args` from the repository root in a fresh interpreter; its last line
    of output. A failure raises with the child's own error, not just its exit status."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({' '.join(args)}):\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


def raw_table(events: int, seed: int = 0, defect_rate: float = 0.01) -> pa.Table:
    """One generated day with planted defects, shaped like `raw_events` (canonical columns + source_file)."""
    from algo_platform.core.schema import with_low_cardinality_encoded
    from algo_platform.ingest.datagen import build_world, generate_day, plant_defects

    world = build_world(max(events // 10, 100), max(events // 25, 200), seed)
    rng = np.random.default_rng(seed)
    table, _ = plant_defects(generate_day(world, DAY, events, rng), defect_rate, rng)
    table = table.append_column("source_file", pa.array(["bench.parquet"] * table.num_rows))
    # As load_landing_day hands it to raw_events.
    return with_low_cardinality_encoded(table)


# --- cleaning + features: ours vs DuckDB vs polars ---------------------------------------------


def ours_clean_and_features(raw: pa.Table) -> tuple[pa.Table, dict[str, int], pd.DataFrame, pd.DataFrame]:
    from algo_platform.assets.events import clean_table
    from algo_platform.assets.features import build_item_features, build_user_features

    cleaned, drops = clean_table(raw, DAY, NOW)
    return cleaned, drops, build_user_features(cleaned), build_item_features(cleaned)


def bench_cleaning(events: int, repeats: int) -> list[Row]:
    from benchmarks.baselines import duckdb_clean_and_features, polars_clean_and_features

    raw = raw_table(events)
    ours, duck, polars = interleaved_medians(
        [
            seconds_of(lambda: ours_clean_and_features(raw)),
            seconds_of(lambda: duckdb_clean_and_features(raw, DAY, NOW)),
            seconds_of(lambda: polars_clean_and_features(raw, DAY, NOW)),
        ],
        repeats,
    )
    note = "same output tables from all three (tests/unit/test_bench_baselines.py); input is the raw Arrow table"
    return [
        Row(f"cleaning + features, {events:,} events: ours vs DuckDB", ours, duck, "s", "<= 1.2x the faster", note),
        Row(f"cleaning + features, {events:,} events: ours vs polars", ours, polars, "s", "<= 1.2x the faster", note),
    ]


# --- quality checks: GX vs pandas ----------------------------------------------------------------


def bench_quality(events: int, repeats: int) -> Row:
    from algo_platform.assets.events import clean_events
    from algo_platform.quality.contracts import cleaned_events_rules
    from algo_platform.resources.data_quality import DataQuality
    from benchmarks.quality_checks import pandas_checks

    cleaned, _ = clean_events(raw_table(events, defect_rate=0.0), DAY, NOW)
    quality, rules = DataQuality(), cleaned_events_rules(DAY)
    quality.validate(cleaned.head(100), rules, "warm-up")
    ours, plain = interleaved_medians(
        [
            seconds_of(lambda: quality.validate(cleaned, rules, "cleaned_events_suite")),
            seconds_of(lambda: pandas_checks(cleaned, DAY)),
        ],
        repeats,
    )
    return Row(
        f"quality checks (cleaned suite, {len(rules)} rules), {len(cleaned):,} rows: GX vs pandas",
        ours,
        plain,
        "s",
        "<= 1.5x",
    )


# --- peak memory -------------------------------------------------------------------------------------

MEMORY_CHILD = """
import json, sys
from upath import UPath
from benchmarks.suite import DAY, NOW
from algo_platform.assets.events import clean_events
from algo_platform.resources.io_managers import ParquetIOManager, read_table

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))

raw_path, cleaned_path = sys.argv[1:]
idle = rss("VmRSS")  # interpreter and libraries, before any data exists
# The cleaned_events step: read raw_events as Arrow (as its IO manager does), clean, store.
raw = read_table(UPath(raw_path))
cleaned, _ = clean_events(raw, DAY, NOW)
ParquetIOManager(base_path=UPath(cleaned_path).parent).dump_to_path(None, cleaned, UPath(cleaned_path))
# VmHWM is this process's own high-water mark; ru_maxrss would carry over the parent's across exec.
peak = rss("VmHWM")
plain = sum(c.cast(c.type.value_type).nbytes if hasattr(c.type, "value_type") else c.nbytes for c in raw.columns)
print(json.dumps({"arrow_bytes": raw.nbytes, "plain_bytes": plain, "peak_bytes": peak, "idle_bytes": idle}))
"""


def bench_memory(events: int) -> Row:
    """Peak RSS of the cleaning step in a fresh process, above that process's idle interpreter."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as folder:
        raw_path = f"{folder}/raw_events.parquet"
        pq.write_table(raw_table(events), raw_path, compression="zstd")
        measured = json.loads(child_output(MEMORY_CHILD, raw_path, f"{folder}/cleaned_events.parquet"))
    return Row(
        f"peak memory cleaning {events:,} events (RSS above the idle interpreter) vs the raw input as Arrow",
        (measured["peak_bytes"] - measured["idle_bytes"]) / 2**20,
        measured["arrow_bytes"] / 2**20,
        "MiB",
        "report; aim <= 3x",
        "the cleaned_events step: read raw Parquet as Arrow, clean, convert to pandas, write Parquet; "
        f"baseline is the input as read (text dictionary-encoded), {measured['plain_bytes'] / 2**20:,.0f} MiB "
        "with plain strings",
    )


# --- sensor tick -------------------------------------------------------------------------------------


def bench_sensor(repeats: int, processed: int = 10_000, new: int = 10) -> Row:
    from algo_platform.jobs import automation

    with tempfile.TemporaryDirectory() as root:
        events = Path(root) / "landing" / "events"
        days = 100
        for number in range(days):
            folder = events / (DAY - dt.timedelta(days=number)).isoformat()
            folder.mkdir(parents=True)
            for part in range(processed // days):
                (folder / f"part-{part:05d}.parquet").write_bytes(b"x")
        real_clock = automation._now_ns
        automation._now_ns = lambda: real_clock() + 60_000_000_000  # ticks long after the files settled
        try:
            cursor = automation.scan_landing_zone(root, None).cursor
            for number in range(new):
                (events / DAY.isoformat() / f"new-{number}.parquet").write_bytes(b"x")
            seconds = median_seconds(lambda: automation.scan_landing_zone(root, cursor), repeats)
        finally:
            automation._now_ns = real_clock
    return Row(f"sensor tick: {processed:,} processed files, {new} new", seconds, None, "s", "< 1 s")


# --- trainer through Pipes vs a plain PyTorch loop -------------------------------------------------


def plain_training_loop(sequences: str, vocabulary: str, epochs: int, batch_size: int = 128) -> float:
    """The same model, batches and update (AdamW with weight decay, gradient clipping, warm-up +
    cosine schedule) as the simplest PyTorch loop: samples per second. Without our trainer's
    reporting, checkpoints and resumption, which is what the comparison prices."""
    import torch

    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.models import build_model
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import read_sequences, training_windows
    from algo_platform.training.model_config import model_config_of
    from algo_platform.training.optimizer import lr_lambda, parameter_groups

    config = TrainConfig()
    torch.manual_seed(0)
    windows = torch.as_tensor(training_windows(read_sequences(sequences).history, config.max_len))
    model = build_model(model_config_of(config, len(read_item_ids(vocabulary))))
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    steps = epochs * -(-len(windows) // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(steps, config.warmup_fraction))
    started, samples = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in torch.randperm(len(windows)).split(batch_size):
            rows = windows[batch].long()
            loss = model(rows[:, :-1], rows[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            samples += len(rows)
    return samples / (time.perf_counter() - started)


def plain_training_in_own_process(sequences: str, vocabulary: str, epochs: int) -> float:
    """`plain_training_loop` as a script of its own, as the Pipes trainer runs. In the long-lived
    bench process, after the other rows, the row gave 0.85-0.90x in full runs and 0.99-1.00x run
    alone; a fresh process for both sides removes that difference in setup."""
    script = (
        "import sys; from benchmarks.suite import plain_training_loop as f; print(f(*sys.argv[1:3], int(sys.argv[3])))"
    )
    return float(child_output(script, sequences, vocabulary, str(epochs)))


def pipes_training(sequences: str, vocabulary: str, output: str, epochs: int) -> float:
    """The trainer launched by PipesSubprocessClient from an asset: the samples/s it reports."""

    from algo_platform.resources.launcher import SubprocessTrainingLauncher

    @dg.asset
    def trainer_through_pipes(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        # The launcher sequence_model uses on a laptop, with the trainer's default hyper-parameters.
        args = ["--sequences", sequences, "--vocabulary", vocabulary, "--output-dir", output, "--device", "cpu"]
        invocation = SubprocessTrainingLauncher().run_trainer(context, [*args, "--epochs", str(epochs)])
        return invocation.get_materialize_result()

    result = dg.materialize([trainer_through_pipes])
    return float(
        result.asset_materializations_for_node("trainer_through_pipes")[0].metadata["samples_per_second"].value
    )


def bench_trainer(events: int, repeats: int) -> Row:
    from algo_platform.assets.sequences import build_training_sequences
    from algo_platform.ingest.datagen import build_world, generate_day

    world = build_world(max(events // 20, 100), max(events // 50, 200), 0)
    days = [
        generate_day(world, DAY - dt.timedelta(days=offset), events // 2, np.random.default_rng(offset))
        for offset in (1, 0)
    ]
    events_frame = pa.concat_tables(days).to_pandas()
    sequences, vocabulary = build_training_sequences(events_frame, DAY)
    with tempfile.TemporaryDirectory() as folder:
        sequences_path, vocabulary_path = f"{folder}/sequences.parquet", f"{folder}/vocabulary.parquet"
        sequences.to_parquet(sequences_path)
        vocabulary.to_parquet(vocabulary_path)
        runs = iter(range(repeats))
        ours, plain = interleaved_medians(
            [
                lambda: pipes_training(sequences_path, vocabulary_path, f"{folder}/run{next(runs)}", epochs=2),
                lambda: plain_training_in_own_process(sequences_path, vocabulary_path, epochs=2),
            ],
            repeats,
        )
    return Row(
        "trainer samples/s on CPU: launched through Pipes vs plain PyTorch loop",
        ours,
        plain,
        "samples/s",
        ">= 0.95x",
        "higher is better; GPU figures need a lent GPU",
    )


# --- per-run fixed cost ------------------------------------------------------------------------------


def bench_run_overhead(repeats: int) -> Row:
    @dg.asset
    def nearly_empty() -> int:
        return 1

    job = dg.define_asset_job("overhead_job", selection=[nearly_empty], executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[nearly_empty], jobs=[job])
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        resolved = defs.resolve_job_def("overhead_job")
        seconds = median_seconds(lambda: resolved.execute_in_process(instance=instance), repeats)
    return Row(
        "per-run fixed cost: one trivial asset, in-process run on a SQLite instance",
        seconds,
        None,
        "s",
        "< 5 s",
        "launched in process, not through the daemon's queue",
    )


# --- whole retrain path: Dagster vs plain Python -----------------------------------------------------


RETRAIN_DAYS = [DAY - dt.timedelta(days=1), DAY]
BENCH_PROJECT = "bench"


def retrain_through_dagster(root: str) -> None:
    """`ingest_job` for each day, then `retrain_job`, on a fresh instance and MLflow registry (no
    champion to compare with, as in plain)."""
    from algo_platform.core.project import parse_project
    from algo_platform.core.settings import Settings
    from algo_platform.definitions import build_project_definitions

    project = parse_project(
        {
            "name": BENCH_PROJECT,
            "owners": ["team:bench"],
            "partitions_start": "2024-01-01",
            "training": {"window_days": len(RETRAIN_DAYS)},
        },
        "benchmark",
    )
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        defs = build_project_definitions(project, Settings("local", root, dagster_home=home))
        for day in RETRAIN_DAYS:
            defs.resolve_job_def(f"{BENCH_PROJECT}_ingest_job").execute_in_process(
                partition_key=str(day), instance=instance
            )
        result = defs.resolve_job_def(f"{BENCH_PROJECT}_retrain_job").execute_in_process(
            partition_key=str(RETRAIN_DAYS[-1]),
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"sequence_model": {"config": {"epochs": 1, "device": "cpu"}}}},
        )
        # The promotion gate may refuse (a failed run by design); the report must exist.
        if not any(e.asset_key.path[-1] == "evaluation_report" for e in result.get_asset_materialization_events()):
            raise RuntimeError("retrain path through Dagster did not produce evaluation_report")


def retrain_plain(root: str) -> None:
    from benchmarks.retrain_plain import retrain

    retrain(f"{root}/projects/{BENCH_PROJECT}", RETRAIN_DAYS, NOW, epochs=1)


RETRAIN_SIDES = {"dagster": retrain_through_dagster, "plain": retrain_plain}

# Each side runs in a fresh interpreter (as Dagster's run launcher starts one per run): in one
# long-lived process, whichever side ran first at 2M events was 30-50 s slower, which no run order
# cancels. Imports happen before the clock starts, on both sides.
RETRAIN_CHILD = """
import json, sys, time
import benchmarks.retrain_plain, algo_platform.definitions
from benchmarks.suite import RETRAIN_SIDES
started = time.perf_counter()
RETRAIN_SIDES[sys.argv[1]](sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def time_retrain_side(side: str, root: str) -> float:
    return json.loads(child_output(RETRAIN_CHILD, side, root))["seconds"]


def bench_retrain_path(events: int, repeats: int, items: int = RETRAIN_ITEMS, warm_up: bool = True) -> Row:
    """Two days of `events / 2` (a 2-day window): ingest both, train 1 epoch, evaluate, promote,
    recommend. The plain side calls the same functions (benchmarks/retrain_plain.py). Both sides
    first run once on tiny data, so the libraries' files are in the page cache for both."""
    from algo_platform.ingest.datagen import generate

    # A warm-up, then the measurement; `--quick` proves the harness and measures nothing: no warm-up.
    for size, count in ([(4_000, 1)] if warm_up else []) + [(events, repeats)]:
        with tempfile.TemporaryDirectory() as root:
            landing = f"{root}/projects/{BENCH_PROJECT}"
            generate(landing, len(RETRAIN_DAYS), size // 2, seed=0, end_date=DAY, n_items=min(items, size // 10))
            # A B B A ...: cancels drift over the run (page cache, machine load) between the sides.
            order = [name for pair in range(count) for name in (("dagster", "plain"), ("plain", "dagster"))[pair % 2]]
            times: dict[str, list[float]] = {"dagster": [], "plain": []}
            for name in order:
                times[name].append(time_retrain_side(name, root))
    return Row(
        f"whole retrain path, {events:,} events, {items:,} items: Dagster jobs vs the same functions as plain Python",
        statistics.median(times["dagster"]),
        statistics.median(times["plain"]),
        "s",
        "<= 1.10",
        "both: 2 days ingested with every check, 1 epoch on CPU, evaluation with plots, MLflow, recommendations; "
        "each run in a fresh process (imports excluded), A B B A; "
        f"runs: dagster {', '.join(f'{t:.1f}' for t in times['dagster'])} s, "
        f"plain {', '.join(f'{t:.1f}' for t in times['plain'])} s",
    )


# --- harness -------------------------------------------------------------------------------------


def run(events: int, quick: bool) -> list[Row]:
    repeats = 1 if quick else 3
    steps = [
        # The size for this row is 2M events; the data rows use the full --events.
        # Minutes per run at 2M events on CPU: two runs of each side there, in A B B A order.
        (
            "retrain path",
            lambda: [
                bench_retrain_path(min(events, 2_000_000), 2 if events >= 1_000_000 else repeats, warm_up=not quick)
            ],
        ),
        ("run overhead", lambda: [bench_run_overhead(repeats)]),
        ("cleaning", lambda: bench_cleaning(events, repeats)),
        # seconds each; 3 runs gave 1.10-1.51x across full runs
        ("quality", lambda: [bench_quality(events, 2 * repeats - 1)]),
        ("memory", lambda: [bench_memory(events)]),
        ("sensor", lambda: [bench_sensor(repeats)]),
        ("trainer", lambda: [bench_trainer(min(events, 200_000), repeats)]),
    ]
    rows: list[Row] = []
    began = time.perf_counter()
    for number, (name, measure) in enumerate(steps, start=1):
        rows += measure()
        spent = time.perf_counter() - began
        left = spent / number * (len(steps) - number)
        # Progress on stderr: the table on stdout stays clean.
        print(f"[{number}/{len(steps)}] {name} done, {spent:,.0f} s so far, about {left:,.0f} s left", file=sys.stderr)
    return rows


def render(rows: list[Row], events: int, quick: bool) -> str:
    lines = [
        f"# Benchmark results ({'quick' if quick else 'full'}, {events:,} events, "
        f"{os.cpu_count()} cores, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "| what | ours | baseline | ratio | target | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        baseline = f"{row.baseline:,.3f} {row.unit}" if row.baseline is not None else "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        lines.append(f"| {row.what} | {row.ours:,.3f} {row.unit} | {baseline} | {ratio} | {row.target} | {row.note} |")
    return "\n".join(lines) + "\n"


def save(rows: list[Row], events: int, quick: bool, folder: Path = RESULTS) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = "bench-quick" if quick else "bench"
    json_path, markdown_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(
        json.dumps(
            {"events": events, "quick": quick, "rows": [{**asdict(row), "ratio": row.ratio} for row in rows]}, indent=2
        )
        + "\n"
    )
    markdown_path.write_text(render(rows, events, quick))
    return json_path, markdown_path


def main() -> None:
    """`python -m benchmarks.suite` (make bench): every comparison; a table on stdout, JSON + Markdown in --out."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=main.__doc__)
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="events per data comparison (the retrain path: at most 2M)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny data, one repetition: proves the harness, measures nothing"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and Markdown results")
    args = parser.parse_args()
    events = min(args.events, 20_000) if args.quick else args.events
    rows = run(events, args.quick)
    print(render(rows, events, args.quick))
    json_path, markdown_path = save(rows, events, args.quick, args.out)
    print(f"written: {json_path}, {markdown_path}")


if __name__ == "__main__":
    main()
