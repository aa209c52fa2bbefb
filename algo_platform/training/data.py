"""Turn the `training_sequences` table into fixed-length tensors, fully vectorised.

Rows of the table are users, with `history` (item indices before the held-out day) and
`holdout` (item indices on the held-out day). Index 0 is padding / unknown item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_platform.training.storage import read_bytes


@dataclass
class RaggedSequences:
    """Many variable-length sequences stored as one flat array plus offsets."""

    values: np.ndarray  # (total,) int64
    offsets: np.ndarray  # (n + 1,) int64

    @classmethod
    def from_arrow(cls, column: pa.ChunkedArray | pa.Array) -> RaggedSequences:
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64)
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(values, np.concatenate([[0], np.cumsum(lengths)]))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class SequenceData:
    user_ids: np.ndarray
    history: RaggedSequences
    holdout: RaggedSequences


def read_sequences(uri: str) -> SequenceData:
    table = pq.read_table(pa.BufferReader(read_bytes(uri)), columns=["user_id", "history", "holdout"])
    return SequenceData(
        user_ids=table.column("user_id").to_numpy(),
        history=RaggedSequences.from_arrow(table.column("history")),
        holdout=RaggedSequences.from_arrow(table.column("holdout")),
    )


def _windows_ending_at(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Rows of `width` items ending (exclusive) at `ends`, left-padded with 0 before `starts`."""
    index = ends[:, None] - width + np.arange(width)[None, :]
    valid = index >= starts[:, None]
    return (
        np.where(valid, values[np.clip(index, 0, max(len(values) - 1, 0))], 0)
        if len(values)
        else np.zeros((len(ends), width), dtype=np.int64)
    )


def training_windows(history: RaggedSequences, max_len: int) -> np.ndarray:
    """Cut every history into windows of max_len + 1 items (inputs = [:-1], targets = [1:]).

    Windows are taken from the end backwards with stride max_len, so every transition in every
    history is a training target exactly once.
    """
    lengths = history.lengths
    users = np.flatnonzero(lengths >= 2)
    windows_per_user = -(-(lengths[users] - 1) // max_len)  # ceil((n - 1) / max_len)
    user_of_window = np.repeat(users, windows_per_user)
    first_window = np.repeat(np.cumsum(windows_per_user) - windows_per_user, windows_per_user)
    window_number = np.arange(len(user_of_window)) - first_window
    ends = history.offsets[user_of_window + 1] - window_number * max_len
    return _windows_ending_at(history.values, history.offsets[user_of_window], ends, max_len + 1)


@dataclass
class EvaluationBatch:
    inputs: np.ndarray  # (users, max_len) left-padded item indices
    targets: np.ndarray  # (users, max_len) next item at each position, -1 where not evaluated
    user_rows: np.ndarray  # row in SequenceData for each evaluated user


def holdout_windows(data: SequenceData, max_len: int) -> EvaluationBatch:
    """For each user with held-out items: the last max_len inputs and every held-out next item.

    Each held-out item is predicted from everything before it (history plus the earlier items of
    the held-out day). A new user's first item has no context and is not scored.
    """
    history, holdout = data.history, data.holdout
    users = np.flatnonzero(holdout.lengths > 0)
    total_lengths = history.lengths + holdout.lengths
    full_offsets = np.concatenate([[0], np.cumsum(total_lengths)])
    full = np.zeros(full_offsets[-1], dtype=np.int64)
    # Scatter each user's history then holdout into one flat array of full sequences.
    hist_dest = np.repeat(full_offsets[:-1] - history.offsets[:-1], history.lengths) + np.arange(len(history.values))
    full[hist_dest] = history.values
    hold_dest = np.repeat(full_offsets[:-1] + history.lengths - holdout.offsets[:-1], holdout.lengths) + np.arange(
        len(holdout.values)
    )
    full[hold_dest] = holdout.values

    starts, ends = full_offsets[users], full_offsets[users + 1]
    window = _windows_ending_at(full, starts, ends, max_len + 1)
    position = ends[:, None] - (max_len + 1) + np.arange(max_len + 1)[None, :]
    in_holdout = position >= (starts + history.lengths[users])[:, None]
    has_context = position - 1 >= starts[:, None]
    scored = (in_holdout & has_context)[:, 1:]
    targets = np.where(scored, window[:, 1:], -1)
    return EvaluationBatch(inputs=window[:, :-1], targets=targets, user_rows=users)


def validation_split(history: RaggedSequences) -> tuple[RaggedSequences, SequenceData]:
    """Hold out each user's last history item for validation (users with at least 3 items).

    Returns the training histories without those items, and the validation set as SequenceData
    (the shortened histories, each holding out its removed item), so validation never sees a
    training target and the evaluated day stays untouched for the final hold-out metrics."""
    lengths = history.lengths
    held = lengths >= 3
    last = history.offsets[1:][held] - 1
    keep = np.ones(len(history.values), dtype=bool)
    keep[last] = False
    train = RaggedSequences(history.values[keep], np.concatenate([[0], np.cumsum(lengths - held)]))
    holdout = RaggedSequences(history.values[last], np.concatenate([[0], np.cumsum(held.astype(np.int64))]))
    return train, SequenceData(user_ids=np.arange(len(lengths)), history=train, holdout=holdout)


def popularity_scores(history: RaggedSequences, num_items: int) -> np.ndarray:
    """How often each item index occurs in the training histories (the popularity baseline)."""
    return np.bincount(history.values, minlength=num_items).astype(np.float32)


def full_sequences(data: SequenceData) -> RaggedSequences:
    """Each user's history followed by their held-out items: everything known about them."""
    history, holdout = data.history, data.holdout
    lengths = history.lengths + holdout.lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.zeros(offsets[-1], dtype=np.int64)
    values[np.repeat(offsets[:-1] - history.offsets[:-1], history.lengths) + np.arange(len(history.values))] = (
        history.values
    )
    hold_dest = np.repeat(offsets[:-1] + history.lengths - holdout.offsets[:-1], holdout.lengths)
    values[hold_dest + np.arange(len(holdout.values))] = holdout.values
    return RaggedSequences(values, offsets)


def latest_windows(data: SequenceData, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last max_len items of every user who has any: (inputs, row of each user in `data`)."""
    full = full_sequences(data)
    users = np.flatnonzero(full.lengths > 0)
    return _windows_ending_at(full.values, full.offsets[users], full.offsets[users + 1], max_len), users


def seen_before_targets(data: SequenceData, max_len: int) -> RaggedSequences:
    """For every scored target of `holdout_windows(data, max_len)`, in the same (row-major) order: the
    items the user interacted with before it (history, then the held-out items before it), the
    target itself left out. Evaluation with `exclude_seen` masks these."""
    full = full_sequences(data)
    batch = holdout_windows(data, max_len)
    rows, columns = np.nonzero(batch.targets >= 0)
    users = batch.user_rows[rows]
    # Column j of the targets is the window's item j + 1, which ends at the user's last item.
    positions = full.offsets[users + 1] - max_len + columns
    starts = full.offsets[users]
    values, lengths = [], np.zeros(len(rows), dtype=np.int64)
    for n, (start, position) in enumerate(zip(starts, positions, strict=True)):
        seen = np.unique(full.values[start:position])
        seen = seen[(seen != full.values[position]) & (seen != 0)]
        values.append(seen)
        lengths[n] = len(seen)
    flat = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    return RaggedSequences(flat.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]))


def histories_before_targets(data: SequenceData, max_len: int) -> list[np.ndarray]:
    """For every scored target of `holdout_windows(data, max_len)`, in the same (row-major) order: the
    user's whole sequence before it, oldest first (what a team's program is given to predict it)."""
    full = full_sequences(data)
    batch = holdout_windows(data, max_len)
    rows, columns = np.nonzero(batch.targets >= 0)
    users = batch.user_rows[rows]
    positions = full.offsets[users + 1] - max_len + columns
    return [full.values[start:position] for start, position in zip(full.offsets[users], positions, strict=True)]


def history_windows(data: SequenceData, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last max_len items before the held-out ones of every user with a history: (inputs, rows)."""
    users = np.flatnonzero(data.history.lengths > 0)
    offsets = data.history.offsets
    return _windows_ending_at(data.history.values, offsets[users], offsets[users + 1], max_len), users
