"""Sharded training (`compute.strategy: fsdp`): FSDP2 for the network, the item table split by rows,
and checkpoints every rank writes its part of (`torch.distributed.checkpoint`).

- The network: `fully_shard` on each block, then on the model (embeddings, final norm). On GPUs the
  parameters compute in bf16 and gradients reduce in fp32 (`MixedPrecisionPolicy`); blocks may
  recompute their activations in the backward pass (`activation_checkpointing`).
- The item table: with a sampled loss (`negatives` > 0) each rank holds a slice of the rows
  (models/sharded_table.py); FSDP leaves it alone. With the full softmax every position scores the
  whole catalogue, so the table is sharded by FSDP with the rest and gathered for the step.
- Checkpoints: `<output>/sharded-checkpoint/step-<N>/` holds every rank's shards (DCP), and
  `progress.pt` (rank 0, written last) names it with the schedule and the progress. A run resumes
  from it at any world size: DCP reshards the parameters and the optimizer state.
- The registered model: `consolidated_state` gathers the full weights on rank 0, where they load
  into a plain model, one file, loadable by one process.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from algo_platform.models import NextItemModel
from algo_platform.models.sharded_table import RowShardedItemTable
from algo_platform.training.artifacts import load_checkpoint, save_checkpoint
from algo_platform.training.storage import delete_folder, exists

STRATEGIES = ("ddp", "fsdp")
SHARDED_CHECKPOINT = "sharded-checkpoint"
PROGRESS_NAME = "progress.pt"


def device_mesh(device: torch.device) -> DeviceMesh:
    return init_device_mesh(device.type, (dist.get_world_size(),))


def shard_network(model: NextItemModel, device: torch.device, bf16: bool, activation_checkpointing: bool) -> None:
    """FSDP2 over the model in place: each block its own unit, the rest (and a table that is not
    row-sharded) in the root's. The row-sharded table is already split: FSDP ignores it."""
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    options: dict[str, Any] = {"mp_policy": policy} if policy else {}
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, torch.nn.ModuleList):
        for index, block in enumerate(blocks):
            if activation_checkpointing:
                block = checkpoint_wrapper(block)
                blocks[index] = block
            fully_shard(block, **options)
    table = [m.weight for m in model.modules() if isinstance(m, RowShardedItemTable)]
    fully_shard(model, ignored_params=set(table), **options)


def consolidated_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full weights, on rank 0's CPU (empty elsewhere); every rank calls it together. The names are
    a plain model's: activation-checkpoint wrappers leave no trace in them."""
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {name.replace("_checkpoint_wrapped_module.", ""): tensor for name, tensor in state.items()}


def progress_uri(output_dir: str) -> str:
    return f"{output_dir.rstrip('/')}/{SHARDED_CHECKPOINT}/{PROGRESS_NAME}"


def save_sharded(output_dir: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rest: dict) -> None:
    """Every rank writes its shards (one process: the whole) to a new step folder; then rank 0 points
    `progress.pt` at it (so a kill midway leaves the previous checkpoint whole) and removes the older one."""
    root = f"{output_dir.rstrip('/')}/{SHARDED_CHECKPOINT}"
    folder = f"step-{rest['progress']['step']}"
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=f"{root}/{folder}")
    distributed = dist.is_initialized()
    if not distributed or dist.get_rank() == 0:
        written = exists(progress_uri(output_dir))
        previous = load_checkpoint(progress_uri(output_dir), torch.device("cpu"))["folder"] if written else None
        world_size = dist.get_world_size() if distributed else 1
        save_checkpoint(progress_uri(output_dir), {**rest, "folder": folder, "world_size": world_size})
        if previous and previous != folder:
            delete_folder(f"{root}/{previous}")
    if distributed:
        dist.barrier()


def load_sharded(output_dir: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load the last sharded checkpoint into `model` and `optimizer` (at this run's world size, whatever
    the writer's) and return what rank 0 saved beside it."""
    rest = load_checkpoint(progress_uri(output_dir), torch.device("cpu"))
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=f"{output_dir.rstrip('/')}/{SHARDED_CHECKPOINT}/{rest['folder']}")
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    return rest
