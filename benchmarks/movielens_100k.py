"""Every built-in next-item family on a real public ratings log, MovieLens-100K, the platform's way.

`python -m benchmarks.movielens_100k --inter PATH [--families sasrec,ease] [--out FILE]` takes the
ratings file RecBole's wheel ships (`pip download --no-deps recbole==1.2.1`, then
`recbole/dataset_example/ml-100k/ml-100k.inter` from the wheel: 943 users, 1,682 films, 100,000
ratings, 1997-98; never committed here) as a team would: `import_events` splits it into one landing
file per day, each day is cleaned as `cleaned_events` cleans it, every rating is an interaction,
`build_training_sequences` holds out each user's last interaction by time (`leave_last_out`), the
trainer trains each family with the platform's defaults, and the evaluation asset's code ranks each
held-out film against the whole catalogue with the films the user already rated masked
(`training.exclude_seen`), popularity beside it on the same split. The protocol of RecBole's
leave-one-out (`benchmarks/recbole_run.py` runs RecBole's models on the same split).
Results: `results/movielens_100k.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.ratings_leave_last_out import cleaned_history

RESULTS = Path(__file__).parent / "results"
MAPPING = {"user_id": "user_id", "item_id": "item_id", "ts": "timestamp"}


def ratings_csv(inter: Path, target: Path) -> pd.DataFrame:
    """RecBole's atomic file (`user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float`)
    as the CSV a team would export: ISO timestamps, one row per rating."""
    frame = pd.read_csv(inter, sep="\t")
    frame.columns = [name.split(":")[0] for name in frame.columns]
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(target, index=False)
    return frame


@dataclass(frozen=True)
class Split:
    """The ratings as the platform holds them after `import`, cleaning and `leave_last_out`."""

    ratings: int
    import_seconds: float
    landed_days: int
    cleaned_rows: int
    catalogue: int
    last_day: dt.date
    sequences: pd.DataFrame
    sequences_path: str
    vocabulary_path: str


def leave_last_out_split(inter: Path, folder: str) -> Split:
    """RecBole's ratings file imported into `folder` as a team would (`import_events`), each day cleaned
    as `cleaned_events` cleans it, every rating an interaction, each user's last one held out."""
    from algo_platform.assets.sequences import build_training_sequences
    from algo_platform.ingest.importer import import_events

    ratings = ratings_csv(inter, Path(folder, "ratings.csv"))
    started = time.perf_counter()
    first_day = pd.Timestamp(ratings["timestamp"].min()).date().isoformat()
    imported = import_events(Path(folder, "ratings.csv"), f"{folder}/storage", MAPPING, {"rating": "float64"},
                             first_day, today=dt.date.today())  # fmt: skip
    import_seconds = time.perf_counter() - started
    events = cleaned_history(f"{folder}/storage", sorted(imported.rows_per_day)).to_pandas()
    last_day = dt.date.fromisoformat(max(imported.rows_per_day))
    sequences, vocabulary = build_training_sequences(events, last_day, protocol="leave_last_out")
    sequences_path, vocabulary_path = f"{folder}/sequences.parquet", f"{folder}/vocabulary.parquet"
    sequences.to_parquet(sequences_path)
    vocabulary.to_parquet(vocabulary_path)
    return Split(len(ratings), import_seconds, len(imported.rows_per_day), len(events), len(vocabulary), last_day,
                 sequences, sequences_path, vocabulary_path)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from algo_platform.assets.evaluation import evaluate_day
    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.models import FAMILIES
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inter", required=True, help="ml-100k.inter from RecBole's wheel")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--set", action="append", default=[], help="family.setting=value, e.g. sasrec.epochs=60")
    parser.add_argument(
        "--program",
        action="append",
        default=[],
        help="a team's next-item program (e.g. projects/movies/item_knn.py), run as model.command",
    )
    parser.add_argument("--out", default=str(RESULTS / "movielens_100k.json"))
    args = parser.parse_args(argv)
    overrides: dict[str, dict] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        family, setting = key.split(".", 1)
        overrides.setdefault(family, {})[setting] = type(getattr(TrainConfig, setting))(value)

    with tempfile.TemporaryDirectory() as folder:
        split = leave_last_out_split(Path(args.inter), folder)
        sequences, sequences_path, vocabulary_path = split.sequences, split.sequences_path, split.vocabulary_path
        users = pd.DataFrame({"user_id": sequences["user_id"], "main_device": "web", "main_region": "us"})
        rows = []
        for program in args.program:
            started = time.perf_counter()
            model_uri = train_program(Path(program), folder, sequences_path, vocabulary_path, split.last_day)
            train_seconds = time.perf_counter() - started
            overall, _ = evaluate_day(sequences_path, vocabulary_path, users, model_uri, None, exclude_seen=True,
                                      model_format="mlflow")  # fmt: skip
            rows.append(_row(f"command python {Path(program).name}", {}, 0, 0, train_seconds, overall))
            print(json.dumps(rows[-1]), flush=True)
        for family in [f for f in args.families.split(",") if f]:
            config = TrainConfig(**{"model": family, "device": "cpu", **overrides.get(family, {})})
            started = time.perf_counter()
            result = train(config, sequences_path, vocabulary_path, f"{folder}/{family}", Reporter(None))
            train_seconds = time.perf_counter() - started
            overall, _ = evaluate_day(sequences_path, vocabulary_path, users, result["model_uri"], None,
                                      exclude_seen=True)  # fmt: skip
            rows.append(_row(family, overrides.get(family, {}), result["epochs"], result["best_epoch"], train_seconds,
                             overall))  # fmt: skip
            if "blend_weight" in result:  # the trained family's share that validation chose
                rows[-1]["blend_weight"] = result["blend_weight"]
            print(json.dumps(rows[-1]), flush=True)
    summary = {
        "ratings": split.ratings,
        "import_seconds": split.import_seconds,
        "landed_days": split.landed_days,
        "cleaned_rows": split.cleaned_rows,
        "held_out_users": int((sequences["holdout_length"] > 0).sum()),
        "catalogue": split.catalogue,
        "rows": rows,
    }
    print(markdown(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


def _row(family: str, settings: dict, epochs: int, best_epoch: int, seconds: float, overall: pd.DataFrame) -> dict:
    scores = overall.set_index("scorer")
    return {
        "family": family,
        "settings": settings,
        "epochs_run": epochs,
        "best_epoch": best_epoch,
        "train_seconds": seconds,
        "hr@10": float(scores.loc["sequence_model", "hr@10"]),
        "ndcg@10": float(scores.loc["sequence_model", "ndcg@10"]),
        "popularity_ndcg@10": float(scores.loc["popularity", "ndcg@10"]),
        "targets": int(scores.loc["sequence_model", "targets"]),
    }


def train_program(program: Path, folder: str, sequences_path: str, vocabulary_path: str, day: dt.date) -> str:
    """The program trained as the platform trains `model.command:`: the sequence_model asset of a project
    whose folder holds it, materialized by Dagster (Pipes, the contract's tables, the probe, the
    registration). Returns the program's model folder."""
    import os
    import shutil

    import dagster as dg

    from algo_platform.assets.program_model import build_program_model_asset
    from algo_platform.core.project import parse_project
    from algo_platform.core.settings import Settings
    from algo_platform.definitions import in_project
    from algo_platform.resources.environment import build_resources
    from algo_platform.resources.partitions import project_partitions

    os.environ["ALGO_PLATFORM_PROJECTS"] = f"{folder}/projects"
    Path(folder, "projects", "ml100k").mkdir(parents=True, exist_ok=True)
    shutil.copy(program, Path(folder, "projects", "ml100k", program.name))
    project = parse_project(
        {"name": "ml100k", "owners": ["team:benchmark"], "partitions_start": "1997-01-01",
         "training": {"evaluation": "leave_last_out", "exclude_seen": True},
         "model": {"command": ["python", program.name]}},
        "benchmark",
    )  # fmt: skip
    settings = Settings(env="local", storage_root=f"{folder}/platform")
    for name, source in (("training_sequences", sequences_path), ("item_vocabulary", vocabulary_path)):
        target = Path(settings.layout.project("ml100k").root) / name / f"{day.isoformat()}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    partitions = project_partitions(project.partitions_start, project.data.partition)
    inputs = [dg.AssetSpec(["ml100k", n], partitions_def=partitions) for n in ("training_sequences", "item_vocabulary")]
    model = in_project([build_program_model_asset(partitions, project, "default")], project)[0]
    with dg.instance_for_test() as instance:
        result = dg.materialize([model, *inputs], partition_key=day.isoformat(), instance=instance,
                                resources=build_resources(settings, project))  # fmt: skip
    return result.asset_value(dg.AssetKey(["ml100k", "sequence_model"]))["model_uri"]


def markdown(summary: dict) -> str:
    lines = [
        f"MovieLens-100K: {summary['ratings']:,} ratings imported into {summary['landed_days']:,} days "
        f"({summary['import_seconds']:.0f} s); {summary['held_out_users']:,} users' last film held out, ranked "
        f"against all {summary['catalogue']:,} films, seen films masked; CPU",
        "",
        "| family | settings | epochs (best) | train s | HR@10 | NDCG@10 | popularity NDCG@10 | x popularity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lift = r["ndcg@10"] / r["popularity_ndcg@10"] if r["popularity_ndcg@10"] else float("nan")
        lines.append(
            f"| {r['family']} | {r['settings'] or 'defaults'} | {r['epochs_run']} ({r['best_epoch']}) | "
            f"{r['train_seconds']:.0f} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['popularity_ndcg@10']:.4f} | "
            f"{lift:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
