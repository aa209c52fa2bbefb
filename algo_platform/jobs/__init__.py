"""Asset jobs: ingest one day, and retrain on the window ending at one day."""

import dagster as dg

from algo_platform.assets.partitions import daily_partitions

# One process per run, not per step: the steps are short pandas/GX work (training itself runs in
# its own process through Pipes), and a process per step cost 20.8 s vs 5.3 s for one day's
# ingest run of 5,000 events on 2 cores.
EXECUTOR = dg.in_process_executor

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("raw_events", "cleaned_events", "user_features", "item_features"),
    partitions_def=daily_partitions,
    executor_def=EXECUTOR,
    description="Landing-zone files of one day -> raw, cleaned events -> user and item features.",
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    # The run queue allows one run with this tag at a time (dagster_home/dagster.yaml).
    tags={"algo-platform/gpu": "true"},
    selection=dg.AssetSelection.assets(
        "training_sequences",
        "item_vocabulary",
        "sequence_model",
        "evaluation_report",
        "champion_model",
        "user_recommendations",
    ),
    partitions_def=daily_partitions,
    executor_def=EXECUTOR,
    description="Sequences over the window ending at the day -> model -> evaluation -> champion -> recommendations.",
)

ALL_JOBS = [ingest_job, retrain_job]
