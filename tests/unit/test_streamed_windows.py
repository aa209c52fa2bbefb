"""Training windows streamed from Parquet row groups: the batches are those of the whole table in
memory, each rank reads only its groups, and a resumed run gets the same batches."""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from algo_platform.training.data import holdout_windows, read_sequences, training_windows, validation_split
from algo_platform.training.windows import StreamedWindows, scan_row_groups
from tests.unit.test_training import trainer_command


def write_grouped_sequences(folder, users: int = 300, rows_per_group: int = 10, items: int = 500) -> tuple[str, str]:
    """Histories of varied lengths (1 to 80 items), in row groups of `rows_per_group` users."""
    rng = np.random.default_rng(3)
    histories = [rng.integers(1, items + 1, rng.integers(1, 80)).tolist() for _ in range(users)]
    table = pa.table(
        {
            "user_id": np.arange(users, dtype=np.int64),
            "history": pa.array(histories, pa.list_(pa.int64())),
            "holdout": pa.array([rng.integers(1, items + 1, 2).tolist() for _ in range(users)], pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, folder / "sequences.parquet", row_group_size=rows_per_group)
    vocabulary = pa.table({"item_index": np.arange(1, items + 1), "item_id": np.arange(1, items + 1) * 7})
    pq.write_table(vocabulary, folder / "vocabulary.parquet")
    return str(folder / "sequences.parquet"), str(folder / "vocabulary.parquet")


def whole_table_windows_by_group(uri: str, max_len: int, hold_out_last: bool) -> list[np.ndarray]:
    """The in-memory windows of the whole table, cut where each row group's users end."""
    file = pq.ParquetFile(uri)
    history = read_sequences(uri).history
    history = validation_split(history)[0] if hold_out_last else history
    windows, per_user = training_windows(history, max_len), -(-np.maximum(history.lengths - 1, 0) // max_len)
    bounds = np.cumsum([0] + [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)])
    ends = np.concatenate([[0], np.cumsum(per_user)])[bounds]
    return [windows[start:end] for start, end in zip(ends[:-1], ends[1:], strict=True)]


@pytest.mark.parametrize("world_size", [1, 3])
def test_streamed_batches_are_the_whole_tables_and_each_rank_reads_its_own_groups(tmp_path, world_size, monkeypatch):
    uri, _ = write_grouped_sequences(tmp_path)
    max_len, batch_size = 10, 24
    scanned = scan_row_groups(uri, max_len, 501, hold_out_last=True)
    by_group = whole_table_windows_by_group(uri, max_len, hold_out_last=True)
    assert scanned.window_counts.tolist() == [len(w) for w in by_group]
    # The per-user sets, built a group at a time, are those of the whole table.
    whole = read_sequences(uri)
    np.testing.assert_array_equal(scanned.evaluation.inputs, holdout_windows(whole, max_len).inputs)
    np.testing.assert_array_equal(scanned.evaluation.user_rows, holdout_windows(whole, max_len).user_rows)
    np.testing.assert_array_equal(
        scanned.validation.targets, holdout_windows(validation_split(whole.history)[1], max_len).targets
    )

    read: dict[int, list[int]] = {}
    original = pq.ParquetFile.read_row_group
    ranks = [StreamedWindows(uri, scanned.window_counts, max_len, batch_size, r, world_size, torch.device("cpu"), True)
             for r in range(world_size)]  # fmt: skip
    seen = []
    for rank, stream in enumerate(ranks):

        def spy(file, group, *args, rank=rank, **kwargs):
            read.setdefault(rank, []).append(group)
            return original(file, group, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
        batches = list(stream.batches(seed=5, epoch=2))
        plan = stream.plan(seed=5, epoch=2)
        expected = np.concatenate([by_group[group][order] for group, order in plan])
        assert len(batches) == stream.steps_per_epoch == ranks[0].steps_per_epoch
        for step, batch in enumerate(batches):
            np.testing.assert_array_equal(
                batch.numpy(), expected[step * stream.local_batch : (step + 1) * stream.local_batch]
            )
        assert set(read[rank]) <= {group for group, _ in plan}  # only its own groups
        seen += [tuple(row) for batch in batches for row in batch.tolist()]
        # A run resumed at step 3 gets the rest of the same batches.
        resumed = list(stream.batches(seed=5, epoch=2, from_step=3))
        assert [b.tolist() for b in resumed] == [b.tolist() for b in batches[3:]]
    everything = sum(len(w) for w in by_group)
    # No window twice; what is left out is at most one group's and a batch's worth a rank.
    assert len(set(seen)) == len(seen) == ranks[0].steps_per_epoch * (batch_size // world_size) * world_size
    assert len(seen) > 0.8 * everything
    monkeypatch.undo()


def test_the_trainer_streams_row_groups_and_learns_what_it_learns_in_memory(tmp_path):
    from tests.support.factories import write_inputs

    sequences, vocabulary = write_inputs(tmp_path, users=120)
    regrouped = tmp_path / "grouped.parquet"
    pq.write_table(pq.read_table(sequences), regrouped, row_group_size=10)
    common = ("--epochs", "8", "--patience", "0")
    in_memory = subprocess.run(trainer_command(sequences, vocabulary, str(tmp_path / "memory"), *common),
                               capture_output=True, text=True)  # fmt: skip
    streamed = subprocess.run(trainer_command(str(regrouped), vocabulary, str(tmp_path / "stream"), *common,
                                              "--stream-row-groups"), capture_output=True, text=True)  # fmt: skip
    assert in_memory.returncode == 0 and streamed.returncode == 0, streamed.stderr[-3000:]
    memory = torch.load(tmp_path / "memory" / "model.pt", weights_only=False)
    stream = torch.load(tmp_path / "stream" / "model.pt", weights_only=False)
    # The same held-out set and baseline; the walk learnt from streamed batches as from shuffled ones.
    assert stream["metrics"]["targets"] == memory["metrics"]["targets"]
    assert stream["metrics"]["popularity_ndcg@10"] == memory["metrics"]["popularity_ndcg@10"]
    assert stream["metrics"]["ndcg@10"] > 0.8 and memory["metrics"]["ndcg@10"] > 0.8
