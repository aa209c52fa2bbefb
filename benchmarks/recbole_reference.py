"""The platform's SASRec beside a reference implementation from PyPI (RecBole 1.2's SASRec) on the
explicit-ratings log, with the literature's protocol for both.

`python -m benchmarks.recbole_reference [--users N] [--items N] [--epochs E]` builds the ratings
log of `benchmarks/ratings_log.py`, keeps the ratings of 3.5 stars or more as interactions (as
`data.feedback` does), and splits it the same way for both: each user's last interaction by time
is the test, the one before validates, every title of the catalogue is ranked and the titles the
user already rated are masked (`training.exclude_seen`). The platform's SASRec trains with the
trainer's defaults and is scored by the evaluation code (`evaluation.scoring`, seen items masked),
popularity beside it; RecBole's SASRec trains with RecBole's defaults for SASRec (CE loss, full
ranking) in its own virtual environment (RECBOLE_PYTHON, default `.recbole/bin/python`; make it with
`python3.11 -m venv .recbole && .recbole/bin/pip install torch==2.13.0 "numpy<2" "setuptools<81"
recbole==1.2.1`). Results: `results/recbole_reference.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.ratings_log import RatingsShape, ratings_frame

RESULTS = Path(__file__).parent / "results"
THRESHOLD = 3.5


def platform_sasrec(liked: pd.DataFrame, folder: str, epochs: int) -> dict:
    """Train and score the platform's SASRec on `liked` (user_id, item_id, ts) with seen items masked."""
    import datetime as dt

    from algo_platform.assets.sequences import build_training_sequences
    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.evaluation.scoring import load_model, metrics_from_ranks, model_ranks, popularity_ranks
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import holdout_windows, popularity_scores, read_sequences, seen_before_targets
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    events = liked.assign(event_type="play")
    last_day = events["ts"].max().date() + dt.timedelta(days=1)
    sequences, vocabulary = build_training_sequences(events, last_day, protocol="leave_last_out")
    sequences.to_parquet(f"{folder}/sequences.parquet")
    vocabulary.to_parquet(f"{folder}/vocabulary.parquet")
    started = time.perf_counter()
    result = train(
        TrainConfig(epochs=epochs, device="cpu"),
        f"{folder}/sequences.parquet",
        f"{folder}/vocabulary.parquet",
        f"{folder}/platform",
        Reporter(None),
    )
    seconds = time.perf_counter() - started
    data = read_sequences(f"{folder}/sequences.parquet")
    item_ids = read_item_ids(f"{folder}/vocabulary.parquet")
    model = load_model(result["model_uri"])
    batch = holdout_windows(data, model.max_len)
    seen = seen_before_targets(data, model.max_len)
    ranks, _ = model_ranks(model, batch.inputs, batch.targets, item_ids, seen=seen)
    popularity = popularity_ranks(popularity_scores(data.history, len(item_ids)), batch.targets, seen)
    ours, baseline = metrics_from_ranks(ranks), metrics_from_ranks(popularity)
    return {
        "ndcg@10": ours["ndcg@10"],
        "hr@10": ours["hr@10"],
        "popularity_ndcg@10": baseline["ndcg@10"],
        "popularity_hr@10": baseline["hr@10"],
        "unmasked_ndcg@10": result["holdout_ndcg@10"],
        "epochs_run": result["epochs"],
        "best_epoch": result["best_epoch"],
        "seconds_per_epoch": seconds / result["epochs"],
        "targets": int(len(ranks)),
    }


def recbole_sasrec(liked: pd.DataFrame, folder: str, epochs: int, python: str) -> dict:
    dataset = Path(folder, "data", "ratings")
    dataset.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "user_id:token": liked["user_id"],
            "item_id:token": liked["item_id"],
            "timestamp:float": liked["ts"].astype("int64") // 10**9,
        }
    )
    frame.to_csv(dataset / "ratings.inter", sep="\t", index=False)
    script = Path(__file__).with_name("recbole_run.py")
    done = subprocess.run(
        [python, str(script), str(dataset.parent), "ratings", str(epochs), folder],
        capture_output=True,
        text=True,
        cwd=folder,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"RecBole failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=RatingsShape.users)
    parser.add_argument("--items", type=int, default=RatingsShape.items)
    parser.add_argument("--epochs", type=int, default=30, help="most epochs for each (both stop early)")
    parser.add_argument("--recbole-python", default=os.environ.get("RECBOLE_PYTHON", ".recbole/bin/python"))
    args = parser.parse_args()
    if not Path(args.recbole_python).exists():
        raise SystemExit(f"{args.recbole_python}: no RecBole environment; see this module's docstring")

    ratings = ratings_frame(RatingsShape(users=args.users, items=args.items))
    liked = ratings[ratings["rating"] >= THRESHOLD]
    liked = pd.DataFrame(
        {
            "user_id": liked["userId"].to_numpy(np.int64),
            "item_id": liked["movieId"].to_numpy(np.int64),
            "ts": pd.to_datetime(liked["timestamp"], unit="s", utc=True),
        }
    ).sort_values(["user_id", "ts"], kind="stable")
    report = {"interactions": len(liked), "users": int(liked["user_id"].nunique()), "threshold": THRESHOLD}
    with tempfile.TemporaryDirectory() as folder:
        report["platform"] = platform_sasrec(liked, folder, args.epochs)
        print("platform", report["platform"], flush=True)
        report["recbole"] = recbole_sasrec(liked, folder, args.epochs, args.recbole_python)
        print("recbole", report["recbole"], flush=True)
    report["platform_vs_recbole_ndcg@10"] = report["platform"]["ndcg@10"] / report["recbole"]["ndcg@10"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recbole_reference.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
