"""One module per stage of the data flow; this package only collects them."""

from algo_platform.assets.evaluation import evaluation_report, promotion_gate
from algo_platform.assets.events import (
    cleaned_events,
    cleaned_events_drift,
    cleaned_events_suite,
    raw_events,
    raw_events_suite,
)
from algo_platform.assets.features import item_features, item_features_suite, user_features, user_features_suite
from algo_platform.assets.model import sequence_model
from algo_platform.assets.sequences import (
    build_training_sequences_asset,
    item_vocabulary_suite,
    training_sequences_suite,
)
from algo_platform.assets.serving import champion_model, user_recommendations

INGEST_ASSETS = [raw_events, cleaned_events, user_features, item_features]
TRAINING_ASSETS = [
    build_training_sequences_asset,
    sequence_model,
    evaluation_report,
    champion_model,
    user_recommendations,
]
ALL_ASSETS = [*INGEST_ASSETS, *TRAINING_ASSETS]
ALL_CHECKS = [
    raw_events_suite,
    cleaned_events_suite,
    cleaned_events_drift,
    user_features_suite,
    item_features_suite,
    training_sequences_suite,
    item_vocabulary_suite,
    promotion_gate,
]
