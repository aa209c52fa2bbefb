"""The next-item task contract for a team's own program (`model.command:` in project.yaml).

The program gets, through the Pipes extra `task` (`TaskInputs`):
- `tables["interactions"]`: Parquet, one row per user: `user_id`, `item_ids` (the user's training
  interactions, raw item ids, oldest first; the held-out ones are never given);
- `tables["items"]`: Parquet, `item_id`: the catalogue it may recommend from;
- `hyperparameters`: its settings from project.yaml, plus `k` (how many items a list holds),
  `exclude_seen` (whether a list may hold items the user already interacted with), `evaluation`
  (the split: next_day or leave_last_out) and `seed`.

It writes an MLflow pyfunc model and reports `model_uri`, `model_format: mlflow`,
`metrics_per_epoch` (may be empty) and `validation_ndcg@10`. The pyfunc is given a frame of
`user_id` and `item_ids` (each user's history, raw ids, oldest first) and returns one row per input
row: `item_ids` (the top `k` items, best first) and `scores` (theirs, non-increasing).

Before the platform registers it, `evaluation.program.probe` runs it on a sample of real users and refuses, naming the
rule, a model that breaks this; evaluation and serving then go through the same pyfunc, so no
framework is assumed.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PRIMARY_METRIC = "ndcg@10"
PROBE_USERS = 1000


def training_tables(sequences_uri: str, vocabulary_uri: str, folder: str) -> dict[str, str]:
    """The program's inputs, written under `folder`: the training interactions in raw item ids (no
    held-out item among them) and the catalogue. Returns table name -> URI."""
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import read_sequences
    from algo_platform.training.storage import write_bytes_atomically

    data = read_sequences(sequences_uri)
    item_ids = read_item_ids(vocabulary_uri)
    history = data.history
    has_history = history.lengths > 0
    raw = item_ids[history.values]
    interactions = pa.table(
        {
            "user_id": pa.array(data.user_ids[has_history]),
            "item_ids": pa.ListArray.from_arrays(
                pa.array(np.concatenate([[0], np.cumsum(history.lengths[has_history])]), pa.int32()),
                pa.array(raw[np.repeat(has_history, history.lengths)], pa.int64()),
            ),
        }
    )
    items = pa.table({"item_id": pa.array(item_ids[1:], pa.int64())})
    tables = {}
    for name, table in (("interactions", interactions), ("items", items)):
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        tables[name] = f"{folder.rstrip('/')}/inputs/{name}.parquet"
        write_bytes_atomically(tables[name], buffer.getvalue())
    return tables
