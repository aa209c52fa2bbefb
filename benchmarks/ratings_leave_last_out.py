"""Both model families on a years-long explicit-ratings log, leave-last-out, full-catalogue ranking.

`python -m benchmarks.ratings_leave_last_out [--users N] [--items N] [--epochs E]` writes the log
of `benchmarks/ratings_log.py` as a public ratings CSV and takes it the platform's way:
`import_events` splits it into one landing file per day, `clean_table` cleans each day as
`cleaned_events` does, `build_training_sequences` holds out each user's last liked title
(`training.evaluation: leave_last_out`, `data.feedback` threshold 3.5), and the trainer trains
each family with its defaults (validation on each user's previous title, best epoch kept, early
stopping). Every held-out title is ranked against the whole catalogue; the baseline is popularity
on the same hold-out, scored by the same trainer run. Results in `results/ratings_leave_last_out.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.ratings_log import RatingsShape, describe, ratings_frame

RESULTS = Path(__file__).parent / "results"
MAPPING = {"user_id": "userId", "item_id": "movieId", "ts": "timestamp"}
THRESHOLD = 3.5
METRICS = ("hr@10", "ndcg@10", "popularity_hr@10", "popularity_ndcg@10")


def cleaned_history(storage: str, days: list[str]) -> pa.Table:
    """Every landed day cleaned as the pipeline cleans it (one day at a time, as partitions are)."""
    from algo_platform.engines.polars.cleaning import clean_table

    now = dt.datetime.now(dt.UTC)
    tables = []
    for day in days:
        raw = pa.concat_tables(pq.read_table(f) for f in sorted(Path(storage, "landing", "events", day).iterdir()))
        cleaned, _ = clean_table(raw, dt.date.fromisoformat(day), now)
        tables.append(cleaned)
    return pa.concat_tables(tables, promote_options="permissive")


def main(argv: list[str] | None = None) -> None:
    from algo_platform.assets.sequences import build_training_sequences
    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.ingest.importer import import_events
    from algo_platform.models import FAMILIES
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=RatingsShape.users)
    parser.add_argument("--items", type=int, default=RatingsShape.items)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="most epochs (early stopping)")
    parser.add_argument("--out", default=str(RESULTS / "ratings_leave_last_out.json"))
    args = parser.parse_args(argv)

    shape = RatingsShape(users=args.users, items=args.items)
    ratings = ratings_frame(shape)
    log = describe(ratings)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "ratings.csv")
        ratings.to_csv(source, index=False)
        started = time.perf_counter()
        imported = import_events(
            source, f"{folder}/storage", MAPPING, {"rating": "float64"}, shape.start.isoformat(), today=dt.date.today()
        )
        import_seconds = time.perf_counter() - started
        events = cleaned_history(f"{folder}/storage", sorted(imported.rows_per_day)).to_pandas()
        last_day = dt.date.fromisoformat(max(imported.rows_per_day))
        sequences, vocabulary = build_training_sequences(
            events, last_day, protocol="leave_last_out", feedback=("rating", THRESHOLD)
        )
        sequences.to_parquet(f"{folder}/sequences.parquet")
        vocabulary.to_parquet(f"{folder}/vocabulary.parquet")
        rows = []
        for family in FAMILIES:
            config = TrainConfig(model=family, epochs=args.epochs, device="cpu")
            started = time.perf_counter()
            inputs = (f"{folder}/sequences.parquet", f"{folder}/vocabulary.parquet")
            result = train(config, *inputs, f"{folder}/{family}", Reporter(None))
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "family": family,
                    "epochs_run": result["epochs"],
                    "best_epoch": result["best_epoch"],
                    "seconds": seconds,
                    "seconds_per_epoch": seconds / max(result["epochs"], 1),  # a fitted family: once
                    "validation_ndcg_per_epoch": result["validation_ndcg_per_epoch"],
                    "targets": result["holdout_targets"],
                    **{key: result[f"holdout_{key}"] for key in METRICS},
                }
            )
            print(f"{family}: {rows[-1]}", flush=True)
    summary = {
        "log": log,
        "imported_rows": imported.rows,
        "import_seconds": import_seconds,
        "landed_days": len(imported.rows_per_day),
        "cleaned_rows": len(events),
        "liked_interactions": int(sequences["history_length"].sum() + sequences["holdout_length"].sum()),
        "held_out_users": int((sequences["holdout_length"] > 0).sum()),
        "catalogue": len(vocabulary),
        "threshold": THRESHOLD,
        "rows": rows,
    }
    print(markdown(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


def markdown(summary: dict) -> str:
    log = summary["log"]
    lines = [
        f"{log['ratings']:,} ratings by {log['users']:,} users of {log['items']:,} titles "
        f"over {log['span_days']:,} days "
        f"({summary['landed_days']:,} with ratings); {summary['held_out_users']:,} users' last title rated >= "
        f"{summary['threshold']} held out, ranked against all {summary['catalogue']:,} titles; CPU",
        "",
        "| family | epochs (best) | s/epoch | HR@10 | NDCG@10 | popularity NDCG@10 | NDCG@10 / popularity |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lift = r["ndcg@10"] / r["popularity_ndcg@10"] if r["popularity_ndcg@10"] else float("nan")
        lines.append(
            f"| {r['family']} | {r['epochs_run']} ({r['best_epoch']}) | {r['seconds_per_epoch']:.1f} | "
            f"{r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['popularity_ndcg@10']:.4f} | {lift:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
