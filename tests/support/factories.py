"""Projects, events and runs as tests build them."""

import datetime as dt

import numpy as np
import pandas as pd

from algo_platform.core.project import Project, parse_project

# A fixed, complete day in the past, so results don't depend on when the suite runs.
END_DAY = dt.date(2026, 11, 20)


# The project the tests run (a team's pipeline, as projects/<name>/project.yaml declares one).
PROJECT = "team_a"


def make_project(name: str = PROJECT, window_days: int = 7, start: str = "2024-01-01", **fields) -> Project:
    document = {"name": name, "owners": [f"team:{name}"], "partitions_start": start, **fields}
    document["training"] = {"window_days": window_days, **fields.get("training", {})}
    return parse_project(document, "test")


def project_assets(project: Project, *stages) -> list:
    """Some stages of a project's assets (e.g. `build_ingest_assets`, which take the partitions and
    the project's data section), with the project's keys."""
    from algo_platform.definitions import in_project
    from algo_platform.resources.partitions import project_partitions

    partitions = project_partitions(project.partitions_start, project.data.partition)
    return in_project([d for stage in stages for d in stage(partitions, project.data)], project)


def make_events(rows: list[dict], day: dt.date = END_DAY) -> pd.DataFrame:
    """A raw_events-shaped frame from short dicts; unspecified columns get plausible values."""
    base_ts = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12)
    filled = []
    for number, row in enumerate(rows):
        filled.append(
            {
                "event_id": row.get("event_id", f"e{number}"),
                "user_id": row.get("user_id", 1),
                "item_id": row.get("item_id", 100),
                "event_type": row.get("event_type", "play"),
                "watch_ms": row.get("watch_ms", 5_000),
                "item_duration_ms": row.get("item_duration_ms", 10_000),
                "ts": row.get("ts", base_ts + pd.Timedelta(minutes=number)),
                "device": row.get("device", "ios"),
                "region": row.get("region", "eu-west"),
                "topic": row.get("topic", "music"),
                "source_file": "hand-made.parquet",
            }
        )
    frame = pd.DataFrame(filled)
    return frame.astype({"user_id": "Int64", "item_id": "Int64", "watch_ms": "Int64", "item_duration_ms": "Int64"})


def ingest_and_retrain(defs, days: list, instance, epochs: int) -> tuple[list, object]:
    """The whole graph in process: each generated day's ingest, then the retrain of the last day."""
    import dagster as dg

    ingest_job: dg.JobDefinition = defs.resolve_job_def(f"{PROJECT}_ingest_job")
    ingest = [ingest_job.execute_in_process(partition_key=d.day, instance=instance) for d in days]
    retrain = defs.resolve_job_def(f"{PROJECT}_retrain_job").execute_in_process(
        partition_key=END_DAY.isoformat(),
        instance=instance,
        run_config={"ops": {"sequence_model": {"config": {"epochs": epochs}}}},
    )
    return ingest, retrain


NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


# Every asset of a project, by name.
ALL_ASSETS = {
    "raw_events",
    "cleaned_events",
    "data_profile",
    "user_features",
    "item_features",
    "training_sequences",
    "item_vocabulary",
    "sequence_model",
    "evaluation_report",
    "champion_model",
    "user_recommendations",
}


def overall(model: float, popularity: float, champion: float | None = None) -> pd.DataFrame:
    rows = [{"scorer": "sequence_model", "ndcg@10": model}, {"scorer": "popularity", "ndcg@10": popularity}]
    if champion is not None:
        rows.append({"scorer": "champion", "ndcg@10": champion})
    return pd.DataFrame(rows)


def segments(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """(value, users, model ndcg@10, champion ndcg@10) of the `device` segment."""
    return pd.DataFrame(
        [
            {"segment": "device", "value": value, "scorer": scorer, "users": users, "ndcg@10": score}
            for value, users, model, champion in rows
            for scorer, score in (("sequence_model", model), ("champion", champion))
        ]
    )


def write_inputs(folder, users=60, items=12, length=20, seed=0):
    """Users who walk the item catalogue in order: a pattern the model can learn, popularity can't."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, items + 1, users)
    walks = [((start - 1 + np.arange(length)) % items + 1).tolist() for start in starts]
    sequences = pd.DataFrame(
        {"user_id": np.arange(users), "history": [w[:-3] for w in walks], "holdout": [w[-3:] for w in walks]}
    )
    vocabulary = pd.DataFrame({"item_index": np.arange(1, items + 1), "item_id": np.arange(1, items + 1) * 100})
    sequences.to_parquet(folder / "sequences.parquet")
    vocabulary.to_parquet(folder / "vocabulary.parquet")
    return str(folder / "sequences.parquet"), str(folder / "vocabulary.parquet")


def metadata_of(result, asset: str, project: str = PROJECT) -> dict:
    """The metadata of the one materialization of `asset` in a run's result, as plain values."""
    import dagster as dg

    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey([project, asset])]
    assert len(events) == 1, f"{asset} materialized {len(events)} times"
    return {key: value.value for key, value in events[0].materialization.metadata.items()}


def landed_day(storage_root: str, day: str, extra_columns=None):
    """What the raw_events step reads of `day`'s landing files: `write_landing_day`'s load, with
    the Parquet file it wrote read back as `table`."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from algo_platform.ingest.landing import write_landing_day

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "raw.parquet"
        load = write_landing_day(storage_root, day, target, extra_columns)
        load.table = pq.read_table(target)
    return load
