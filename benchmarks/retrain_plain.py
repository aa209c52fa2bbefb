"""The retrain path as plain Python: the functions our assets and checks call, in the same order,
with the same outputs written, and nothing from Dagster (no instance, event log, IO manager,
Pipes subprocess). `bench_retrain_path` compares it with materializing the jobs.

Asset checks are called directly (Dagster runs their bodies as plain functions when invoked).
"""

import datetime as dt
import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from algo_platform.assets.evaluation import evaluate_day, log_report, report_images
from algo_platform.assets.events import clean_events
from algo_platform.assets.features import build_item_features, build_user_features
from algo_platform.assets.sequences import (
    build_training_sequences,
    item_vocabulary_suite,
    training_sequences_suite,
)
from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.evaluation.promotion import PromotionPolicy, promotion_decision
from algo_platform.ingest.landing import write_landing_day
from algo_platform.quality.contracts import (
    CLEANED_SUITE,
    ITEM_FEATURES_SUITE,
    RAW_SUITE,
    USER_FEATURES_SUITE,
    cleaned_events_rules,
    item_features_rules,
    raw_events_rules,
    user_features_rules,
)
from algo_platform.quality.dimensions import distribution_profile, quality_dimensions
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.tracking import ExperimentTracking


def ingest_day(
    root: str, workdir: str, day: dt.date, now: dt.datetime, quality: DataQuality
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """raw_events → cleaned_events → user/item features of one day, with every check."""
    raw_path = Path(workdir) / f"raw-{day}.parquet"
    load = write_landing_day(root, day.isoformat(), raw_path)
    load.table = pq.read_table(raw_path)
    raw = load.table.to_pandas()
    quality_dimensions(raw, day, now, quality.allowed_lateness)
    # Each suite's check reads its days from its context; its rules and validation are these.
    quality.validate(raw, raw_events_rules(), RAW_SUITE)
    cleaned, _ = clean_events(load.table, day, now)
    quality_dimensions(cleaned, day, now, quality.allowed_lateness)
    distribution_profile(cleaned)
    quality.validate(cleaned, cleaned_events_rules(day), CLEANED_SUITE)
    users, items = build_user_features(cleaned), build_item_features(cleaned)
    quality.validate(users, user_features_rules(), USER_FEATURES_SUITE)
    quality.validate(items, item_features_rules(), ITEM_FEATURES_SUITE)
    for name, frame in (("cleaned_events", cleaned), ("user_features", users), ("item_features", items)):
        frame.to_parquet(Path(workdir) / f"{name}-{day}.parquet")
    return cleaned, users


def retrain(root: str, days: list[dt.date], now: dt.datetime, epochs: int) -> pd.DataFrame:
    """Ingest each day, then sequences → model → evaluation → promotion → recommendations."""
    with tempfile.TemporaryDirectory(dir=root) as workdir:  # fresh outputs and registry each time
        return _retrain(root, workdir, days, now, epochs)


def _retrain(root: str, workdir: str, days: list[dt.date], now: dt.datetime, epochs: int) -> pd.DataFrame:
    from algo_platform.evaluation import report as render
    from algo_platform.evaluation.scoring import recommend
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    quality = DataQuality()
    ingested = [ingest_day(root, workdir, day, now, quality) for day in days]
    sequences, vocabulary = build_training_sequences(pd.concat([cleaned for cleaned, _ in ingested]), days[-1])
    training_sequences_suite(training_sequences=sequences, data_quality=quality)
    item_vocabulary_suite(item_vocabulary=vocabulary, data_quality=quality)
    sequences_path, vocabulary_path = f"{workdir}/sequences.parquet", f"{workdir}/vocabulary.parquet"
    sequences.to_parquet(sequences_path)
    vocabulary.to_parquet(vocabulary_path)

    config = TrainConfig(epochs=epochs, device="cpu")
    trained = train(config, sequences_path, vocabulary_path, f"{workdir}/model", Reporter(None))
    tracking = ExperimentTracking(
        tracking_uri=f"sqlite:///{workdir}/mlflow.db", artifact_location=f"{workdir}/mlartifacts"
    )
    run_id = tracking.log_training(
        "plain", asdict(config), trained["losses"], {"final_loss": trained["final_loss"]}, {}, [trained["model_uri"]]
    )
    version = tracking.register(run_id, trained["model_uri"], tags={})

    overall, segments = evaluate_day(sequences_path, vocabulary_path, ingested[-1][1], trained["model_uri"], None)
    images = report_images(trained["losses"], overall, segments)
    html = render.html_report("plain", [], {"Overall": overall, "Per segment": segments}, images)
    Path(f"{workdir}/report.html").write_text(html)
    log_report(tracking, run_id, overall, html, images)
    if promotion_decision(overall, segments, PromotionPolicy()).promote:
        tracking.promote(version.version)

    recommendations = recommend(trained["model_uri"], sequences_path, vocabulary_path, 20)
    recommendations.to_parquet(f"{workdir}/recommendations.parquet")
    return overall
