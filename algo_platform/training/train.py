"""Train the sequence model: `python -m algo_platform.training --help`.

Reads `training_sequences` and `item_vocabulary` Parquet files, trains with AdamW (warmup +
cosine decay, gradient clipping, bf16 autocast on CUDA, optional torch.compile), checkpoints
every N steps and at each epoch end, resumes from the last checkpoint in the output folder at
the exact step, runs data-parallel (DDP) or sharded (FSDP2, `training/sharding.py`) when started by
torchrun (a batch is split across the processes, so any world size takes the same steps and a
checkpoint resumes at another one), and reports per-epoch loss,
hold-out metrics and GPU use through Dagster Pipes when launched by Dagster (log lines otherwise).

In small steps a task type can reuse or replace: `start` (the session, resumed if a checkpoint is
there), `one_epoch`, `validated`, `save_progress`, `fit` (epochs with early stopping), and `train`
(fit, then the held-out evaluation and the model file).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.models import (
    PAD,
    ModelConfig,
    NextItemModel,
    build_model,
    check_next_item_contract,
    model_state,
)
from algo_platform.models.sharded_table import row_sharded_item_tables
from algo_platform.training.artifacts import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    load_checkpoint,
    read_item_ids,
    save_checkpoint,
)
from algo_platform.training.blending import blended
from algo_platform.training.data import (
    holdout_windows,
    popularity_scores,
    read_sequences,
    training_windows,
    validation_split,
)
from algo_platform.training.fitted import fit_in_closed_form, is_fitted_family
from algo_platform.training.gpu_monitor import GpuMonitor
from algo_platform.training.idle import IdleRule
from algo_platform.training.metrics import evaluate
from algo_platform.training.model_config import model_config_of
from algo_platform.training.optimizer import lr_lambda, parameter_groups
from algo_platform.training.runtime import ContractRefused, Distributed, Reporter, resolve_device
from algo_platform.training.sharding import (
    consolidated_state,
    device_mesh,
    load_sharded,
    progress_uri,
    save_sharded,
    shard_network,
)
from algo_platform.training.storage import exists
from algo_platform.training.windows import InMemoryWindows, ScannedSequences, StreamedWindows, scan_row_groups


def validated(session: Session, state: dict[str, Any], epoch: int, reporter: Reporter) -> dict[str, Any]:
    """Training progress after this epoch's validation: the best weights so far, and whether to stop.

    Replicated (DDP): every rank validates the same weights on the same set, so all ranks agree.
    Sharded: rank 0 validates the consolidated weights and tells the others the figure."""
    config, validation = session.config, session.validation
    model = session.plain_model()
    metric = -1.0
    if model is not None:
        metric = evaluate(model, validation.inputs, validation.targets, session.device, config.eval_k)[
            f"ndcg@{config.eval_k}"
        ]
    if session.sharded:
        shared = [metric]
        torch.distributed.broadcast_object_list(shared, src=0)
        metric = shared[0]
    state = {**state, "validation": [*state.get("validation", []), metric]}
    if metric > state.get("best_metric", -1.0):
        best = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()} if model else {}
        return {**state, "best_metric": metric, "best_epoch": epoch, "best_model_state": best}
    if epoch - state["best_epoch"] >= config.patience:
        reporter.info(
            f"early stop after epoch {epoch}: validation NDCG@{config.eval_k} {metric:.4f} has not beaten "
            f"{state['best_metric']:.4f} (epoch {state['best_epoch']}) for {config.patience} epochs; "
            f"keeping epoch {state['best_epoch']}'s weights"
        )
        return {**state, "stopped_early": True}
    return state


def with_epoch_sums(
    session: Session, state: dict[str, Any], loss_sum: torch.Tensor, target_count: torch.Tensor
) -> dict[str, Any]:
    """Training progress with the epoch's loss sums so far, over all ranks (every rank calls it
    together; only when saving or logging, since reading device-side sums stalls a GPU)."""
    sums = torch.stack([loss_sum, target_count.double()])
    if session.dist.world_size > 1:
        torch.distributed.all_reduce(sums)
    return {**state, "epoch_loss_sum": sums[0].item(), "epoch_targets": int(sums[1].item())}


@dataclass
class Session:
    """What one training session works with: the model (and its DDP/compiled wrapper), the optimizer,
    the schedule and the training windows on the device. Built by `start`; the steps below use it."""

    config: TrainConfig
    dist: Distributed
    device: torch.device
    model: NextItemModel
    trained: torch.nn.Module  # the model as the step runs it: DDP and torch.compile wrap it (FSDP shards it in place)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    windows: InMemoryWindows | StreamedWindows
    validation: Any  # EvaluationBatch of each user's last training item, or None without early stopping
    steps_per_epoch: int
    total_steps: int
    checkpoint_uri: str
    output_dir: str = ""
    sharded: bool = False  # FSDP over several processes: weights and optimizer state are split across ranks

    @property
    def autocast(self) -> torch.autocast:
        # Sharded on GPUs, FSDP's mixed-precision policy keeps the parameters in bf16 instead.
        bf16 = self.device.type == "cuda" and self.config.precision == "bf16" and not self.sharded
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16)

    def plain_model(self) -> NextItemModel | None:
        """The model with all its weights in one process, for validation and the model file: the model
        itself when replicated; sharded, its consolidated copy on rank 0 (None elsewhere; every rank
        calls it together)."""
        if not self.sharded:
            return self.model
        state = consolidated_state(self.model)
        if not self.dist.is_main:
            return None
        plain = build_model(self.model.config).to(self.device)
        plain.load_state_dict(state)
        return plain


def start(
    config: TrainConfig,
    data: Any,
    num_items: int,
    output_dir: str,
    dist: Distributed,
    reporter: Reporter,
    source: str = "training_sequences",
) -> tuple[Session, dict[str, Any]]:
    """The session and its progress: fresh, or resumed from the checkpoint in `output_dir`."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    if dist.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if config.batch_size < dist.world_size:
        raise SystemExit(f"--batch-size {config.batch_size}: at least one window per process ({dist.world_size})")
    if isinstance(data, ScannedSequences):  # --stream-row-groups: windows are read as the epoch reaches them
        validation = data.validation
        windows = StreamedWindows(
            source, data.window_counts, config.max_len, config.batch_size, dist.rank, dist.world_size, device,
            hold_out_last=config.patience > 0,
        )  # fmt: skip
    else:
        train_history, validation_data = validation_split(data.history) if config.patience > 0 else (data.history, None)
        validation = holdout_windows(validation_data, config.max_len) if validation_data is not None else None
        # The whole training set lives on the device: batches are index slices, no per-sample Python.
        on_device = torch.as_tensor(training_windows(train_history, config.max_len)).to(device, non_blocking=True)
        windows = InMemoryWindows(on_device, config.batch_size, dist.rank, dist.world_size)
    if len(windows) == 0:
        raise SystemExit(f"{source}: no user has two or more items in the training window; nothing to train on")
    sharded = config.strategy == "fsdp" and dist.world_size > 1
    model_config = model_config_of(config, num_items)
    try:
        model = build_sharded_model(model_config, device, config) if sharded else build_model(model_config).to(device)
        # A team's family is probed before any training: a broken contract fails in seconds, by name.
        # (Sharded, a plain copy on a small catalogue: the probe scores the whole of it.)
        probed = build_model(replace(model_config, num_items=min(num_items, 1024))).to(device) if sharded else model
        check_next_item_contract(probed, device)
    except ValueError as error:
        raise ContractRefused(f"--model {config.model}: {error}") from None
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.learning_rate,
        fused=device.type == "cuda" and not sharded,
    )
    # A step takes the next batch_size windows of the epoch's order, split across the ranks.
    steps_per_epoch = windows.steps_per_epoch
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, config.warmup_fraction))

    # With fsdp the checkpoint is DCP's at any world size, one process included, so a run resumes at another.
    fsdp = config.strategy == "fsdp"
    checkpoint_uri = progress_uri(output_dir) if fsdp else f"{output_dir.rstrip('/')}/{CHECKPOINT_NAME}"
    state = {"step": 0, "losses": [], "epoch_loss_sum": 0.0, "epoch_targets": 0}
    if exists(checkpoint_uri):
        if fsdp:
            saved = load_sharded(output_dir, model, optimizer)
        else:
            saved = load_checkpoint(checkpoint_uri, device)
            model.load_state_dict(saved["model_state"])
            optimizer.load_state_dict(saved["optimizer_state"])
        scheduler.load_state_dict(saved["scheduler_state"])
        state = saved["progress"]
        if not dist.is_main:  # the epoch's loss so far is every rank's, summed: counted once, on rank 0
            state = {**state, "epoch_loss_sum": 0.0, "epoch_targets": 0}
        written_by = saved.get("world_size", dist.world_size)
        elastic = f" (written by {written_by} processes, resumed by {dist.world_size})"
        reporter.info(
            f"resuming from {checkpoint_uri} at step {state['step']} of {total_steps}"
            + (elastic if written_by != dist.world_size else "")
        )

    trained = model
    if dist.world_size > 1 and not sharded:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        trained = torch.compile(trained)
    if config.precision not in ("bf16", "fp32"):
        raise SystemExit(f"--precision {config.precision!r}: use bf16 or fp32")
    session = Session(
        config, dist, device, model, trained, optimizer, scheduler, windows, validation,
        steps_per_epoch, total_steps, checkpoint_uri, output_dir, sharded,
    )  # fmt: skip
    return session, state


def build_sharded_model(model_config: ModelConfig, device: torch.device, config: TrainConfig) -> NextItemModel:
    """The model split across the ranks (training/sharding.py): its item table by rows when the loss is
    sampled (the full softmax needs the whole table at every step), the network by FSDP2."""
    mesh = device_mesh(device)
    if model_config.negatives > 0:
        with row_sharded_item_tables(mesh):
            model = build_model(model_config)
    else:
        model = build_model(model_config)
    model = model.to(device)
    bf16 = device.type == "cuda" and config.precision == "bf16"
    shard_network(model, device, bf16, config.activation_checkpointing)
    return model


def save_progress(session: Session, progress: dict[str, Any]) -> None:
    """A checkpoint a retry resumes from at this exact step (every rank calls it together): rank 0
    writes it, or sharded, every rank writes its shards."""
    if session.config.strategy == "fsdp":
        rest = {"scheduler_state": session.scheduler.state_dict(), "progress": progress}
        rest["train_config"] = asdict(session.config)
        save_sharded(session.output_dir, session.model, session.optimizer, rest)
    elif session.dist.is_main:
        save_checkpoint(
            session.checkpoint_uri,
            {
                **model_state(session.model),
                "optimizer_state": session.optimizer.state_dict(),
                "scheduler_state": session.scheduler.state_dict(),
                "progress": progress,
                "world_size": session.dist.world_size,
                "train_config": asdict(session.config),
            },
        )


def one_epoch(session: Session, state: dict[str, Any], monitor: GpuMonitor | None = None) -> tuple[dict[str, Any], int]:
    """The rest of the current epoch (all of it, or what a resumed run has left): progress with the
    epoch's loss appended, and the samples trained."""
    config, device = session.config, session.device
    epoch, step_in_epoch = divmod(state["step"], session.steps_per_epoch)
    # Loss sums stay on the device; reading them every step would stall a GPU on each batch.
    loss_sum = torch.tensor(state["epoch_loss_sum"], device=device, dtype=torch.float64)
    target_count = torch.tensor(state["epoch_targets"], device=device, dtype=torch.int64)
    samples = 0
    session.model.train()
    batches = session.windows.batches(config.seed, epoch, from_step=step_in_epoch)
    for step, batch in enumerate(batches, start=step_in_epoch):
        batch = batch.long()
        inputs, targets = batch[:, :-1], batch[:, 1:]
        with session.autocast:
            loss = session.trained(inputs, targets)
        session.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(session.model.parameters(), config.grad_clip)
        session.optimizer.step()
        session.scheduler.step()
        count = ((targets != PAD) & (inputs != PAD)).sum()
        loss_sum += loss.detach().double() * count
        target_count += count
        state["step"] += 1
        samples += len(batch)
        if state["step"] % config.checkpoint_every == 0 and step + 1 < session.steps_per_epoch:
            save_progress(session, with_epoch_sums(session, state, loss_sum, target_count))
        if monitor is not None:
            monitor.idle_check(
                state["step"],
                session.dist.world_size,
                session.config.checkpoint_every,
                session.device,
                lambda sums=(loss_sum, target_count): save_progress(session, with_epoch_sums(session, state, *sums)),
            )
    state = with_epoch_sums(session, state, loss_sum, target_count)
    epoch_loss = state["epoch_loss_sum"] / max(state["epoch_targets"], 1)
    state = {**state, "losses": [*state["losses"], epoch_loss], "epoch_loss_sum": 0.0, "epoch_targets": 0}
    return state, samples


def fit(
    session: Session, state: dict[str, Any], reporter: Reporter, monitor: GpuMonitor | None = None
) -> tuple[dict[str, Any], int]:
    """Epochs until the schedule ends or validation stops improving; the best epoch's weights kept."""
    samples = 0
    while state["step"] < session.total_steps and not state.get("stopped_early"):
        epoch = state["step"] // session.steps_per_epoch
        state, trained = one_epoch(session, state, monitor)
        samples += trained
        reporter.info(
            f"epoch {epoch + 1}/{session.config.epochs} loss {state['losses'][-1]:.4f} "
            f"lr {session.scheduler.get_last_lr()[0]:.2e}"
        )
        if session.validation is not None:
            state = validated(session, state, epoch + 1, reporter)
        save_progress(session, state)
    return state, samples


def final_model(session: Session, state: dict[str, Any]) -> NextItemModel | None:
    """The model to evaluate and save, whole in one process (None on the ranks that do not save it):
    the best epoch's weights, not the last's (the field's "best checkpoint kept")."""
    model = session.plain_model()
    if model is not None and state.get("best_model_state"):
        model.load_state_dict(state["best_model_state"])
    return model


def train(
    config: TrainConfig,
    sequences_uri: str,
    vocabulary_uri: str,
    output_dir: str,
    reporter: Reporter,
    dist: Distributed | None = None,
) -> dict[str, Any]:
    """Train (`start`, `fit`), then evaluate on the held-out items and save the model file."""
    dist = dist or Distributed()
    item_ids = read_item_ids(vocabulary_uri)
    num_items = len(item_ids)
    fitted = is_fitted_family(config)
    if config.blend_with and (fitted or config.stream_row_groups):
        reason = "it needs the histories in memory (stream_row_groups)"
        reason = f"{config.model} is fitted itself" if fitted else reason
        raise ContractRefused(f"--blend-with {config.blend_with}: blends a trained family with a fitted one; {reason}")
    if config.stream_row_groups and not fitted:
        data = scan_row_groups(sequences_uri, config.max_len, num_items, hold_out_last=config.patience > 0)
        evaluation, popularity = data.evaluation, data.popularity
    else:
        data = read_sequences(sequences_uri)
        evaluation, popularity = holdout_windows(data, config.max_len), popularity_scores(data.history, num_items)
    if fitted:
        model, device = fit_in_closed_form(config, data, num_items, reporter, source=sequences_uri)
        state, samples, elapsed, gpu_report, windows = {"losses": []}, 0, 0.0, {}, 0
    else:
        session, state = start(config, data, num_items, output_dir, dist, reporter, source=sequences_uri)
        device, windows = session.device, len(session.windows)
        reporter.info(
            f"training on {device} x{dist.world_size}{' sharded (fsdp)' if session.sharded else ''}: {windows} "
            f"windows of {config.max_len}, {num_items - 1} items, "
            f"{sum(p.numel() for p in session.model.parameters())} parameters"
        )
        monitor = GpuMonitor(device, IdleRule.from_environment())
        started = time.perf_counter()
        try:
            state, samples = fit(session, state, reporter, monitor)
        finally:
            gpu_report = monitor.stop(device)
        elapsed = time.perf_counter() - started
        model = final_model(session, state)
    if not dist.is_main:
        return {"losses": state["losses"]}
    if config.blend_with:
        model = blended(model, config, data.history, device, reporter)

    metrics = evaluate(model, evaluation.inputs, evaluation.targets, device, config.eval_k, baseline_scores=popularity)
    model_uri = f"{output_dir.rstrip('/')}/{MODEL_NAME}"
    save_checkpoint(
        model_uri,
        {
            **model_state(model),
            "train_config": asdict(config),
            "losses": state["losses"],
            "metrics": metrics,
            # The model carries its vocabulary, so it can score later data whose item indices differ
            # (as a tensor: checkpoints load with weights_only, which refuses numpy objects).
            "item_ids": torch.from_numpy(np.asarray(item_ids, dtype=np.int64)),
        },
    )
    result = {
        "model_uri": model_uri,
        "device": str(device),
        "processes": dist.world_size,
        "epochs": len(state["losses"]),
        "best_epoch": state.get("best_epoch", len(state["losses"])),
        "validation_ndcg_per_epoch": state.get("validation", []),
        "final_loss": state["losses"][-1] if state["losses"] else float("nan"),
        "losses": state["losses"],
        "train_windows": windows,
        "num_items": num_items - 1,
        **({"blended_with": config.blend_with, "blend_weight": model.config.blend_weight} if config.blend_with else {}),
        # Samples this process trained in this session, times the processes (DDP ranks run in lockstep).
        "samples_per_second": samples * dist.world_size / elapsed if elapsed > 0 and samples else 0.0,
        # The steps that made the model: the useful part of the time the GPUs were held.
        "train_seconds": elapsed,
        **gpu_report,
        **{f"holdout_{name}": value for name, value in metrics.items()},
    }
    reporter.materialization(
        {
            **{
                key: value
                for key, value in result.items()
                if key not in ("losses", "model_uri", "validation_ndcg_per_epoch")
            },
            "loss_per_epoch": {"raw_value": state["losses"], "type": "json"},
            "validation_ndcg_per_epoch": {"raw_value": result["validation_ndcg_per_epoch"], "type": "json"},
            "model_uri": {"raw_value": model_uri, "type": "path"},
        }
    )
    return result
