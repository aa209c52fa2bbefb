"""training_sequences and item_vocabulary: per-user item sequences over a rolling window."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from algo_platform.core.calendar import window_partitions
from algo_platform.core.project import Training
from algo_platform.core.schema import DEFAULT_INTERACTION_TYPES
from algo_platform.quality.contracts import hard, soft
from algo_platform.resources.data_quality import DataQuality, suite_check_result
from algo_platform.resources.partitions import PeriodPartitions, grain_of
from algo_platform.resources.project import ProjectResource

HELD_OUT = {
    "next_day": "the window's last partition (day, week or month) held out",
    "leave_last_out": "each user's last interaction held out",
}


def _ragged_by_user(users: np.ndarray, values: np.ndarray, all_users: np.ndarray) -> pa.ListArray:
    """Group `values` (already sorted by user, then time) into one list per entry of `all_users`."""
    counts = np.zeros(len(all_users), dtype=np.int64)
    positions = np.searchsorted(all_users, users)
    np.add.at(counts, positions, 1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(np.int32)))


def build_training_sequences(
    events: pd.DataFrame,
    holdout_day: dt.date,
    interaction_types: Sequence[str] = DEFAULT_INTERACTION_TYPES,
    protocol: str = "next_day",
    feedback: tuple[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split events into training history and the held-out items, by the evaluation protocol:

    - `next_day`: everything before `holdout_day` is history, that day is held out;
    - `leave_last_out`: each user's last interaction is held out (users with three or more, so the
      trainer can also hold out the one before it for validation), the rest is history: the
      standard protocol of the sequential-recommendation literature, for logs where users come
      back on scattered days.

    With `feedback` (column, threshold), an event whose value is below the threshold (a 2-star
    rating) is not an interaction; events without a value (a plain play) still are.

    Returns (sequences, vocabulary). Item indices start at 1 in order of training popularity;
    0 means padding, and marks held-out items never seen in training (they count as misses).
    """
    interacted = events["event_type"].astype("string").isin(list(interaction_types))
    if feedback is not None:
        column, threshold = feedback
        interacted &= ~(events[column] < threshold).fillna(False).astype(bool)
    events = events.loc[interacted, ["user_id", "item_id", "ts"]]
    events = events.sort_values(["user_id", "ts"], kind="stable")
    if protocol == "leave_last_out":
        by_user = events.groupby("user_id", sort=False)["item_id"]
        is_last = (by_user.cumcount(ascending=False) == 0).to_numpy()
        in_holdout = is_last & (by_user.transform("size") >= 3).to_numpy()
    elif protocol == "next_day":
        in_holdout = (events["ts"] >= pd.Timestamp(holdout_day, tz="UTC")).to_numpy()
    else:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; use next_day or leave_last_out")
    train, holdout = events[~in_holdout], events[in_holdout]

    counts = train["item_id"].value_counts()
    vocabulary = (
        pd.DataFrame({"item_id": counts.index.to_numpy(np.int64), "train_count": counts.to_numpy(np.int64)})
        .sort_values(["train_count", "item_id"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    vocabulary.insert(0, "item_index", np.arange(1, len(vocabulary) + 1, dtype=np.int64))
    lookup = pd.Index(vocabulary["item_id"])

    def item_indices(frame: pd.DataFrame) -> np.ndarray:
        return lookup.get_indexer(frame["item_id"].to_numpy()) + 1  # unknown (-1) becomes 0

    users = np.union1d(train["user_id"].to_numpy(), holdout["user_id"].to_numpy()).astype(np.int64)
    history = _ragged_by_user(train["user_id"].to_numpy(), item_indices(train), users)
    holdout_indices = item_indices(holdout)
    held_out = _ragged_by_user(holdout["user_id"].to_numpy(), holdout_indices, users)
    sequences = pa.table(
        {
            "user_id": users,
            "history": history,
            "holdout": held_out,
            "history_length": pc.list_value_length(history),
            "holdout_length": pc.list_value_length(held_out),
        }
    ).to_pandas()
    sequences.attrs["holdout_unknown_items"] = int((holdout_indices == 0).sum())
    return sequences, vocabulary


def _feedback(project: ProjectResource) -> tuple[str, float] | None:
    if project.feedback_column is None or project.feedback_threshold is None:
        return None
    return project.feedback_column, project.feedback_threshold


def training_sequences(
    context: dg.AssetExecutionContext, project: ProjectResource, cleaned_events: dict[str, pd.DataFrame]
):
    day = context.partition_key
    # The IO manager has refused a window with missing days; empty days are empty frames.
    expected = sorted(cleaned_events)
    events = pd.concat([cleaned_events[key] for key in expected], ignore_index=True)
    sequences, vocabulary = build_training_sequences(
        events, dt.date.fromisoformat(day), project.interaction_types, project.evaluation, _feedback(project)
    )
    yield dg.Output(
        sequences,
        output_name="training_sequences",
        metadata={
            "window": f"{expected[0]} .. {expected[-1]} ({len(expected)} partitions)",
            "evaluation": HELD_OUT[project.evaluation],
            "users": len(sequences),
            "users_with_history": int((sequences["history_length"] > 0).sum()),
            "history_items": int(sequences["history_length"].sum()),
            "holdout_items": int(sequences["holdout_length"].sum()),
            "holdout_unknown_items": sequences.attrs["holdout_unknown_items"],
            "mean_history_length": float(sequences["history_length"].mean()),
        },
    )
    yield dg.Output(
        vocabulary,
        output_name="item_vocabulary",
        metadata={
            "items": len(vocabulary),
            "preview": dg.MetadataValue.md(vocabulary.head(10).to_markdown(index=False)),
        },
    )


TRAINING_SEQUENCES_SUITE = "training_sequences_suite"
ITEM_VOCABULARY_SUITE = "item_vocabulary_suite"


def training_sequences_suite(training_sequences: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
    """Something to train on and something to evaluate on, one row per user."""
    rules = [
        hard("ExpectColumnValuesToNotBeNull", column="user_id"),
        hard("ExpectColumnValuesToBeUnique", column="user_id"),
        # At least one user with a transition to learn from, and held-out items to score.
        hard("ExpectColumnMaxToBeBetween", column="history_length", min_value=2),
        hard("ExpectColumnSumToBeBetween", column="holdout_length", min_value=1),
        # Very short histories make a weak sequence model: worth a warning, not a stop.
        soft("ExpectColumnMeanToBeBetween", column="history_length", min_value=3),
    ]
    frame = training_sequences.drop(columns=["history", "holdout"])  # lists are not validated by GX
    return suite_check_result(data_quality.validate(frame, rules, TRAINING_SEQUENCES_SUITE), TRAINING_SEQUENCES_SUITE)


def item_vocabulary_suite(item_vocabulary: pd.DataFrame, data_quality: DataQuality) -> dg.AssetCheckResult:
    """Indices 1..N, each item once: the model's embedding table depends on it."""
    rules = [
        hard("ExpectTableRowCountToBeBetween", min_value=2),
        hard("ExpectColumnValuesToBeUnique", column="item_index"),
        hard("ExpectColumnValuesToBeUnique", column="item_id"),
        hard("ExpectColumnValuesToBeBetween", column="item_index", min_value=1, max_value=len(item_vocabulary)),
    ]
    return suite_check_result(
        data_quality.validate(item_vocabulary, rules, ITEM_VOCABULARY_SUITE), ITEM_VOCABULARY_SUITE
    )


# `window_days: all` reaches back a century from the evaluated partition (further than any partition
# start of a log that is still evaluated; the mapping clips it to the first partition). Not more:
# Dagster computes the window's first date, which must stay a valid year in months as in days.
ALL_HISTORY_DAYS = 36_600


def build_sequence_assets(partitions: PeriodPartitions, training: Training) -> list:
    """training_sequences and item_vocabulary over the project's window, with their checks."""
    window_days = training.window_days
    sequences = dg.multi_asset(
        name="training_sequences",
        outs={
            "training_sequences": dg.AssetOut(
                description="Per-user item sequences over the rolling window: history, and what is held out "
                "(the last partition, or each user's last interaction).",
                kinds={"pandas", "parquet"},
            ),
            "item_vocabulary": dg.AssetOut(
                description="Items seen in the training history, indexed by popularity (index 0 is padding).",
                kinds={"pandas", "parquet"},
            ),
        },
        ins={
            "cleaned_events": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-(
                        window_partitions(ALL_HISTORY_DAYS, grain_of(partitions))
                        if window_days == "all"
                        else window_partitions(int(window_days), grain_of(partitions)) - 1
                    ),
                    allow_nonexistent_upstream_partitions=window_days == "all",
                ),
            )
        },
        partitions_def=partitions,
        group_name="training",
    )(training_sequences)
    return [
        sequences,
        dg.asset_check(
            asset="training_sequences", name=TRAINING_SEQUENCES_SUITE, blocking=True, partitions_def=partitions
        )(training_sequences_suite),
        dg.asset_check(asset="item_vocabulary", name=ITEM_VOCABULARY_SUITE, blocking=True, partitions_def=partitions)(
            item_vocabulary_suite
        ),
    ]
