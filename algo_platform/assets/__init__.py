"""One module per stage of the data flow; this package only collects them."""

from algo_platform.assets.evaluation import evaluation_report
from algo_platform.assets.events import cleaned_events, raw_events
from algo_platform.assets.features import item_features, user_features
from algo_platform.assets.model import sequence_model
from algo_platform.assets.sequences import build_training_sequences_asset

INGEST_ASSETS = [raw_events, cleaned_events, user_features, item_features]
TRAINING_ASSETS = [build_training_sequences_asset, sequence_model, evaluation_report]
ALL_ASSETS = [*INGEST_ASSETS, *TRAINING_ASSETS]
