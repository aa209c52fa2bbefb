"""Where a training step's windows come from: all of them on the device (`InMemoryWindows`), or
read from the Parquet row groups of `training_sequences` as the epoch needs them (`StreamedWindows`,
`--stream-row-groups`), for histories too large to hold.

Both give a rank its share of each step's `batch_size` windows, and the same batches to a run
resumed at the same step. In memory, the epoch is one shuffle of every window. Streamed, the plan
depends only on the seed, the epoch and the world size: the row groups in a shuffled order, each
dealt to the rank with the fewest windows so far (each rank reads only its own groups), each group's
windows shuffled; a rank takes `batch_size / world` at a time, and every rank takes as many steps as
any deal lets every rank fill (what is left over is a different few windows each epoch). A resumed run skips the groups
its steps already covered without reading them.

What else the trainer reads of the file (the validation and held-out sets, the popularity baseline)
is per user, so a streamed run builds it a group at a time (`scan_row_groups`): memory grows with
the users and `max_len`, not with the length of their histories.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from algo_platform.training.data import (
    EvaluationBatch,
    RaggedSequences,
    SequenceData,
    holdout_windows,
    training_windows,
    validation_split,
)


class InMemoryWindows:
    """Every training window on the device; an epoch is one shuffle of them all."""

    def __init__(self, windows: torch.Tensor, batch_size: int, rank: int, world_size: int):
        self.windows, self.batch_size, self.rank, self.world_size = windows, batch_size, rank, world_size
        # A last batch too small to give every rank a window is left out.
        full, rest = divmod(len(windows), batch_size)
        self.steps_per_epoch = max(1, full + (rest >= world_size))

    def __len__(self) -> int:
        return len(self.windows)

    def batches(self, seed: int, epoch: int, from_step: int = 0) -> Iterator[torch.Tensor]:
        # The epoch's order depends only on seed and epoch, so a resumed run sees the same batches.
        generator = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(len(self.windows), generator=generator).to(self.windows.device)
        for step in range(from_step, self.steps_per_epoch):
            rows = order[step * self.batch_size : (step + 1) * self.batch_size][self.rank :: self.world_size]
            yield self.windows[rows].long()


def open_parquet(uri: str) -> pq.ParquetFile:
    fs, path = pafs.FileSystem.from_uri(uri)
    return pq.ParquetFile(fs.open_input_file(path))


def group_history(file: pq.ParquetFile, group: int, hold_out_last: bool) -> RaggedSequences:
    """The training histories of one row group's users (without each one's last item when it is
    held out for validation)."""
    history = RaggedSequences.from_arrow(file.read_row_group(group, columns=["history"]).column("history"))
    return validation_split(history)[0] if hold_out_last else history


@dataclass
class ScannedSequences:
    """What the trainer needs of `training_sequences` besides the windows, built a row group at a time."""

    window_counts: np.ndarray  # training windows of each row group
    validation: EvaluationBatch | None  # each user's last training item, from what comes before it
    evaluation: EvaluationBatch  # the held-out items
    popularity: np.ndarray  # occurrences of each item index in the training histories
    users: int


def _concatenated(batches: list[EvaluationBatch], row_offsets: list[int]) -> EvaluationBatch:
    return EvaluationBatch(
        inputs=np.concatenate([b.inputs for b in batches]),
        targets=np.concatenate([b.targets for b in batches]),
        user_rows=np.concatenate([b.user_rows + offset for b, offset in zip(batches, row_offsets, strict=True)]),
    )


def scan_row_groups(uri: str, max_len: int, num_items: int, hold_out_last: bool) -> ScannedSequences:
    """One pass over the file, one row group in memory at a time."""
    file = open_parquet(uri)
    counts, validations, evaluations, offsets = [], [], [], []
    popularity = np.zeros(num_items, dtype=np.float32)
    users = 0
    for group in range(file.num_row_groups):
        table = file.read_row_group(group, columns=["user_id", "history", "holdout"])
        history = RaggedSequences.from_arrow(table.column("history"))
        data = SequenceData(
            table.column("user_id").to_numpy(), history, RaggedSequences.from_arrow(table.column("holdout"))
        )
        train_history, validation_data = validation_split(history) if hold_out_last else (history, None)
        # As `training_windows` cuts them: ceil((items - 1) / max_len) per user, without building them.
        counts.append(int((-(-np.maximum(train_history.lengths - 1, 0) // max_len)).sum()))
        if validation_data is not None:
            validations.append(holdout_windows(validation_data, max_len))
        evaluations.append(holdout_windows(data, max_len))
        popularity += np.bincount(history.values, minlength=num_items).astype(np.float32)
        offsets.append(users)
        users += len(history.lengths)
    return ScannedSequences(
        window_counts=np.asarray(counts, dtype=np.int64),
        validation=_concatenated(validations, offsets) if validations else None,
        evaluation=_concatenated(evaluations, offsets),
        popularity=popularity,
        users=users,
    )


class StreamedWindows:
    """Training windows read from the file's row groups as the epoch reaches them (see the module)."""

    def __init__(
        self, uri: str, counts: np.ndarray, max_len: int, batch_size: int, rank: int, world_size: int,
        device: torch.device, hold_out_last: bool,
    ):  # fmt: skip
        self.uri, self.counts, self.max_len = uri, counts, max_len
        self.rank, self.world_size, self.device, self.hold_out_last = rank, world_size, device, hold_out_last
        self.local_batch = max(1, batch_size // world_size)
        if len(counts) < world_size:
            raise SystemExit(
                f"{uri}: {len(counts)} row groups cannot be shared by {world_size} processes: write the table "
                f"with smaller row groups, or train it without --stream-row-groups"
            )
        # Steps every rank can fill whichever groups an epoch deals it: each group goes to the rank
        # with the fewest windows so far, so no rank ends more than the largest group below another.
        largest = int(counts.max()) if len(counts) else 0
        fewest = int(counts.sum()) // world_size - largest * (world_size - 1) // world_size
        self.steps_per_epoch = max(1, fewest // self.local_batch)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def plan(self, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
        """This rank's row groups of the epoch, in order, each with the order of its windows."""
        loads = np.zeros(self.world_size, dtype=np.int64)
        mine = []
        for group in map(int, np.random.default_rng([seed, epoch]).permutation(len(self.counts))):
            rank = int(np.argmin(loads))
            loads[rank] += self.counts[group]
            if rank == self.rank:
                mine.append((group, np.random.default_rng([seed, epoch, group]).permutation(self.counts[group])))
        return mine

    def batches(self, seed: int, epoch: int, from_step: int = 0) -> Iterator[torch.Tensor]:
        file = open_parquet(self.uri)
        skip, wanted = from_step * self.local_batch, (self.steps_per_epoch - from_step) * self.local_batch
        pending: list[np.ndarray] = []
        held = 0
        for group, order in self.plan(seed, epoch):
            if wanted <= 0:
                return
            if skip >= len(order):  # covered before the resume: not read
                skip -= len(order)
                continue
            windows = training_windows(group_history(file, group, self.hold_out_last), self.max_len)[order][skip:]
            skip = 0
            pending.append(windows[:wanted])
            held += len(pending[-1])
            wanted -= len(pending[-1])
            while held >= self.local_batch:
                stacked = np.concatenate(pending)
                yield torch.as_tensor(stacked[: self.local_batch], device=self.device)
                pending, held = [stacked[self.local_batch :]], len(stacked) - self.local_batch
