"""The engagement task on generated data with a known signal, and the two-stage recommender.

`python -m benchmarks.engagement_task [--users N] [--events-per-day N] [--days D]` generates a
window of the short-video world (`algo_platform.ingest.datagen`), where a play's chance of being
liked, shared, commented or followed rises with the user's taste for the item's topic. It builds
the task's examples (features from the days before each impression), trains the platform's MLP and
the feed team's WideAndDeep (`projects/feed/models.py`) with the engagement trainer's defaults,
and scores the held-out day with the task's evaluator against its baselines: the item's historical
rate, a scikit-learn logistic regression on the same features, and the **oracle**: the generator's
true probability, the ceiling any model can reach. Then SASRec (next-item, trainer defaults but
`--retrieval-epochs`) proposes 100 candidates per user and the MLP re-ranks them: NDCG@10 of the
engaged items of the held-out day, re-ranked vs in SASRec's order. Results: `results/engagement_task.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from scipy.stats import beta

RESULTS = Path(__file__).parent / "results"
DAY = dt.date(2026, 11, 20)
POSITIVE = ["like", "share", "comment", "follow"]


def oracle_probability(world, table: pa.Table) -> np.ndarray:
    """The generator's own P(label) of each event: engagement events follow the user's taste for the
    topic, and a watch under 15% turns any event into a skip (`datagen.generate_day`)."""
    from algo_platform.ingest.datagen import TOPICS

    topic_index = pd.Index(TOPICS).get_indexer(table["topic"].to_pandas().astype(str))
    return _engagement(world, table["user_id"].to_numpy(), topic_index)


def oracle_pairs(world, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The generator's P(label) had `users` been shown `items` (each item's topic is in the world)."""
    position = np.empty(len(world.series_items), dtype=np.int64)
    position[world.series_items] = np.arange(len(world.series_items))
    item_index = pd.Index(world.item_ids).get_indexer(items)
    topic_index = np.searchsorted(world.topic_offsets, position[item_index], side="right") - 1
    return _engagement(world, users, topic_index)


def _engagement(world, users: np.ndarray, topic_index: np.ndarray) -> np.ndarray:
    from algo_platform.ingest.datagen import TOPICS

    user_index = pd.Index(world.user_ids).get_indexer(users)
    affinity = world.user_taste[user_index, topic_index] * len(TOPICS)
    propensity = 1.0 / (1.0 + np.exp(-1.5 * (affinity - 1.0)))
    not_skipped = beta.sf(0.15 / 1.3, 1 + 4 * propensity, 1 + 4 * (1 - propensity))
    return (0.06 + 0.25 * propensity) * not_skipped


def main() -> None:
    from algo_platform.assets.sequences import build_training_sequences
    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.evaluation.scoring import load_model
    from algo_platform.ingest.datagen import build_world, generate_day
    from algo_platform.tasks.contract import TaskInputs
    from algo_platform.tasks.engagement.evaluate import holdout_probabilities, summarise
    from algo_platform.tasks.engagement.examples import build_examples, candidate_features
    from algo_platform.tasks.engagement.metrics import probability_metrics
    from algo_platform.tasks.engagement.scorer import load_scorer
    from algo_platform.tasks.engagement.train import fit
    from algo_platform.tasks.engagement.two_stage import rank_candidates, retrieve, two_stage_ndcg
    from algo_platform.training.data import history_windows, read_sequences
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=3_000)
    parser.add_argument("--events-per-day", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--retrieval-epochs", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    world = build_world(args.users, args.items, 0)
    rng = np.random.default_rng(1)
    days = [DAY - dt.timedelta(days=offset) for offset in range(args.days - 1, -1, -1)]
    table = pa.concat_tables([generate_day(world, day, args.events_per_day, rng) for day in days])
    events = pl.from_arrow(table)
    started = time.perf_counter()
    examples = build_examples(events, DAY, POSITIVE)
    examples_seconds = time.perf_counter() - started
    holdout_rows = (events["ts"].dt.date() == DAY).to_numpy()
    oracle = oracle_probability(world, table.filter(pa.array(holdout_rows)))

    feed_models = Path(__file__).resolve().parents[1] / "projects" / "feed" / "models.py"
    report: dict = {"events": table.num_rows, "days": args.days, "examples": len(examples),
                    "examples_seconds": round(examples_seconds, 2)}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        examples_path = f"{folder}/examples.parquet"
        examples.write_parquet(examples_path)
        frame = examples.to_pandas()
        scorers = {}
        for family in ("mlp", f"{feed_models}:WideAndDeep"):
            inputs = TaskInputs("bench", "ranking", "engagement", DAY.isoformat(), {"examples": examples_path},
                                {"family": family}, f"{folder}/{len(scorers)}")  # fmt: skip
            started = time.perf_counter()
            result = fit(inputs, logging.getLogger("bench"))
            name = family.rsplit(":", 1)[-1]
            report[f"{name}_train_seconds"] = round(time.perf_counter() - started, 2)
            report[f"{name}_epochs"] = result["epochs"]
            scorers[name] = load_scorer(result["model_uri"])
        scored = holdout_probabilities(frame, scorers["mlp"], None)
        scored["WideAndDeep"] = scorers["WideAndDeep"].probabilities(frame[frame["split"] == "holdout"])
        # The examples keep the events' order within the day (user, then time): the oracle lines up.
        holdout = frame[frame["split"] == "holdout"]
        order = np.lexsort((holdout["item_id"].to_numpy(), holdout["user_id"].to_numpy()))
        table_day = table.filter(pa.array(holdout_rows)).to_pandas()
        day_order = np.lexsort((table_day["item_id"].to_numpy(), table_day["user_id"].to_numpy()))
        scored["oracle"] = np.empty(len(scored))
        scored.loc[scored.index[order], "oracle"] = oracle[day_order]
        overall, _ = summarise(scored)
        overall = pd.concat(
            [
                overall,
                pd.DataFrame(
                    [
                        {"scorer": s, **probability_metrics(scored["label"], scored[s])}
                        for s in ("WideAndDeep", "oracle")
                    ]
                ),
            ]
        )
        report["holdout"] = overall[["scorer", "auc", "log_loss", "ece", "examples"]].round(4).to_dict("records")

        # Two stages: SASRec proposes, the MLP re-ranks.
        sequences, vocabulary = build_training_sequences(table.to_pandas(), DAY)
        sequences.to_parquet(f"{folder}/sequences.parquet")
        vocabulary.to_parquet(f"{folder}/vocabulary.parquet")
        started = time.perf_counter()
        trained = train(TrainConfig(epochs=args.retrieval_epochs, device="cpu"), f"{folder}/sequences.parquet",
                        f"{folder}/vocabulary.parquet", f"{folder}/retrieval", Reporter(None))  # fmt: skip
        report["sasrec_train_seconds"] = round(time.perf_counter() - started, 2)
        retrieval = load_model(trained["model_uri"])
        data = read_sequences(f"{folder}/sequences.parquet")
        positives = holdout[holdout["label"] == 1].groupby("user_id")["item_id"].agg(set)
        windows, rows = history_windows(data, retrieval.max_len)
        users = data.user_ids[rows]
        wanted = np.isin(users, positives.index.to_numpy())
        candidates, log_probs = retrieve(retrieval, windows[wanted], 100)
        users = users[wanted]
        hours = holdout.groupby("user_id")["hour"].min().reindex(users).to_numpy()

        def probabilities_of(pairs: pd.DataFrame) -> np.ndarray:
            features = candidate_features(events, pl.from_pandas(pairs), DAY, POSITIVE)
            return scorers["mlp"].probabilities(features.to_pandas())

        started = time.perf_counter()
        reranked, _ = rank_candidates(users, candidates, log_probs, hours, probabilities_of)
        report["rerank_seconds"] = round(time.perf_counter() - started, 2)
        relevant = [positives[u] for u in users]
        report["two_stage"] = two_stage_ndcg(relevant, candidates, reranked)
        # The ceiling of re-ranking: the generator's true engagement probability as the ranker.
        oracle_order, _ = rank_candidates(
            users, candidates, log_probs, hours, lambda pairs: oracle_pairs(world, pairs["user_id"], pairs["item_id"])
        )
        report["two_stage"]["oracle_reranked_ndcg@10"] = two_stage_ndcg(relevant, candidates, oracle_order)[
            "two_stage_ndcg@10"
        ]
        report["sasrec_holdout_ndcg@10_all_plays"] = trained["holdout_ndcg@10"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engagement_task.json").write_text(json.dumps(report, indent=2, default=float))
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
