"""An item table split by rows across the ranks of a training job, for catalogues too large to copy
onto every GPU.

Rank r holds rows [r * ceil(N / W), (r + 1) * ceil(N / W)) as the local shard of a DTensor sharded on
dim 0 (so `torch.distributed.checkpoint` saves each rank's rows and loads them back at another world
size, and `get_model_state_dict(full_state_dict=True)` consolidates the table). A lookup sends each
id to the rank that owns its row and the rows back (two all-to-alls, the second differentiable), so
a row's gradient lands on its owner only: no rank ever holds the whole table, its gradient or its
optimizer state. This is TorchRec's row-wise sharding, in the few lines this platform needs (TorchRec
itself pins an fbgemm-gpu built for another torch; see docs/models.md).

A family gets one through `item_table(config)` (models/base.py) while the trainer builds the model
inside `row_sharded_item_tables(mesh)`; elsewhere it gets a plain `nn.Embedding`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed._functional_collectives import all_to_all_single_autograd
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Shard

_MESH: contextvars.ContextVar[DeviceMesh | None] = contextvars.ContextVar("row_sharded_mesh", default=None)


@contextlib.contextmanager
def row_sharded_item_tables(mesh: DeviceMesh) -> Iterator[None]:
    """Models built inside get their item table row-sharded over `mesh` (see `item_table`)."""
    token = _MESH.set(mesh)
    try:
        yield
    finally:
        _MESH.reset(token)


def sharding_mesh() -> DeviceMesh | None:
    return _MESH.get()


class RowShardedItemTable(nn.Module):
    """`nn.Embedding(num_items, dim)` whose rows are spread over the mesh's ranks (same init: N(0, 0.02))."""

    def __init__(self, num_items: int, dim: int, mesh: DeviceMesh):
        super().__init__()
        self.num_items, self.mesh = num_items, mesh
        rank, world = mesh.get_local_rank(), mesh.size()
        if num_items < world:
            raise ValueError(f"{num_items} items cannot be split across {world} ranks")
        self.rows_per_rank = -(-num_items // world)
        self.start = min(num_items, rank * self.rows_per_rank)
        local_rows = min(num_items, self.start + self.rows_per_rank) - self.start
        # Each rank draws only its own rows: the whole table never exists in one process.
        generator = torch.Generator().manual_seed(torch.initial_seed() + rank)
        local = (torch.randn(local_rows, dim, generator=generator) * 0.02).to(mesh.device_type)
        self.weight = nn.Parameter(
            DTensor.from_local(local, mesh, [Shard(0)], run_check=False, shape=(num_items, dim), stride=(dim, 1))
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of `ids` (any shape; each rank its own ids) -> (*ids.shape, dim); every rank calls it together."""
        flat = ids.reshape(-1)
        owner = torch.div(flat, self.rows_per_rank, rounding_mode="floor")
        order = torch.argsort(owner, stable=True)
        send = torch.bincount(owner, minlength=self.mesh.size())
        received = torch.empty_like(send)
        group = self.mesh.get_group()
        dist.all_to_all_single(received, send, group=group)
        send_sizes, received_sizes = send.tolist(), received.tolist()
        wanted = flat.new_empty(sum(received_sizes))
        dist.all_to_all_single(wanted, flat[order], received_sizes, send_sizes, group=group)
        rows = nn.functional.embedding(wanted - self.start, self.weight.to_local())
        back = all_to_all_single_autograd(rows, send_sizes, received_sizes, group)
        unsorted = torch.empty_like(order)
        unsorted[order] = torch.arange(len(order), device=order.device)
        return back[unsorted].view(*ids.shape, -1)
