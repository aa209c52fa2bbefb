"""The model families side by side: CPU seconds per epoch and hold-out quality against popularity.

`python -m benchmarks.model_families [--events N] [--epochs E]` trains every family in
`algo_platform.models.FAMILIES` with the trainer's defaults on the same generated two-day window
(the second day held out) and prints a Markdown table; results in `results/model_families.json`.
The baseline for quality is popularity on the same hold-out, measured by the same trainer run;
time is reported per epoch and as a ratio to SASRec's in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

RESULTS = Path(__file__).parent / "results"
DAY = dt.date(2026, 11, 20)


def main() -> None:
    from algo_platform.assets.sequences import build_training_sequences
    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.ingest.datagen import build_world, generate_day
    from algo_platform.models import FAMILIES
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    world = build_world(max(args.events // 20, 100), max(args.events // 50, 200), 0)
    days = [
        generate_day(world, DAY - dt.timedelta(days=offset), args.events // 2, np.random.default_rng(offset))
        for offset in (1, 0)
    ]
    sequences, vocabulary = build_training_sequences(pa.concat_tables(days).to_pandas(), DAY)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        sequences_path, vocabulary_path = f"{folder}/sequences.parquet", f"{folder}/vocabulary.parquet"
        sequences.to_parquet(sequences_path)
        vocabulary.to_parquet(vocabulary_path)
        for family in FAMILIES:
            config = TrainConfig(model=family, epochs=args.epochs, device="cpu")
            started = time.perf_counter()
            result = train(config, sequences_path, vocabulary_path, f"{folder}/{family}", Reporter(None))
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "family": family,
                    "seconds_per_epoch": seconds / args.epochs,
                    "hr@10": result["holdout_hr@10"],
                    "ndcg@10": result["holdout_ndcg@10"],
                    "popularity_hr@10": result["holdout_popularity_hr@10"],
                    "popularity_ndcg@10": result["holdout_popularity_ndcg@10"],
                }
            )
    base = next(r["seconds_per_epoch"] for r in rows if r["family"] == "sasrec")
    lines = [
        f"{args.events:,} events over two days, {args.epochs} epochs, trainer defaults, CPU",
        "",
        "| family | s/epoch | vs SASRec | HR@10 | NDCG@10 | popularity NDCG@10 | NDCG@10 / popularity |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lift = r["ndcg@10"] / r["popularity_ndcg@10"] if r["popularity_ndcg@10"] else float("nan")
        lines.append(
            f"| {r['family']} | {r['seconds_per_epoch']:.2f} | {r['seconds_per_epoch'] / base:.2f}x | "
            f"{r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['popularity_ndcg@10']:.4f} | {lift:.2f}x |"
        )
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "model_families.json").write_text(
        json.dumps({"events": args.events, "epochs": args.epochs, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
