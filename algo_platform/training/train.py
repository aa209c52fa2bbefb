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

import json
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from algo_platform.core.families import ContractViolation, resolve_family
from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.models import (
    FAMILIES,
    PAD,
    FittedNextItemModel,
    ModelConfig,
    NextItemModel,
    build_model,
    check_next_item_contract,
    model_state,
)
from algo_platform.models.sharded_table import RowShardedItemTable, row_sharded_item_tables
from algo_platform.training.artifacts import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    load_checkpoint,
    read_item_ids,
    save_checkpoint,
)
from algo_platform.training.data import (
    holdout_windows,
    popularity_scores,
    read_sequences,
    training_windows,
    validation_split,
)
from algo_platform.training.idle import GpusIdle, IdleRule, fake_utilisation, sample_seconds
from algo_platform.training.metrics import fixed_score_ranks, hit_rate_and_ndcg, rows_per_batch, target_ranks
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but no CUDA device is visible; use --device auto or cpu")
    return torch.device(name)


class Reporter:
    """Sends logs and results to Dagster through Pipes when launched by it, else to stderr."""

    def __init__(self, pipes: Any | None):
        self.pipes = pipes
        self.logger = pipes.log if pipes is not None else logging.getLogger("algo_platform.training")

    def info(self, message: str) -> None:
        self.logger.info(message)

    def materialization(self, metadata: dict[str, Any]) -> None:
        if self.pipes is not None:
            self.pipes.report_asset_materialization(metadata=metadata)
        else:
            self.logger.info(
                "result: %s", {k: v.get("raw_value", v) if isinstance(v, dict) else v for k, v in metadata.items()}
            )


def lr_lambda(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@torch.no_grad()
def evaluate(
    model: NextItemModel,
    inputs: np.ndarray,
    targets: np.ndarray,
    device: torch.device,
    k: int,
    baseline_scores: np.ndarray | None = None,
    batch_size: int = 512,
) -> dict[str, float]:
    """HR@k / NDCG@k of the model (and optionally a fixed-score baseline) on scored positions."""
    model.eval()
    model_ranks, baseline_ranks = [], []
    baseline = torch.as_tensor(baseline_scores, device=device) if baseline_scores is not None else None
    per_row = int((targets >= 0).sum(axis=1).max()) if len(targets) else 1
    batch_size = rows_per_batch(batch_size, model.config.num_items, per_row)
    for start in range(0, len(inputs), batch_size):
        batch_inputs = torch.as_tensor(inputs[start : start + batch_size], device=device)
        batch_targets = torch.as_tensor(targets[start : start + batch_size], device=device)
        scored = batch_targets >= 0
        hidden = model(batch_inputs)[scored]
        wanted = batch_targets[scored]
        model_ranks.append(target_ranks(model.item_scores(hidden), wanted).cpu())
        if baseline is not None:
            baseline_ranks.append(fixed_score_ranks(baseline, wanted).cpu())
    ranks = torch.cat(model_ranks) if model_ranks else torch.empty(0, dtype=torch.long)
    hr, ndcg = hit_rate_and_ndcg(ranks, k)
    result = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "targets": int(ranks.numel())}
    if baseline is not None:
        base_hr, base_ndcg = hit_rate_and_ndcg(torch.cat(baseline_ranks) if baseline_ranks else ranks[:0], k)
        result |= {f"popularity_hr@{k}": base_hr, f"popularity_ndcg@{k}": base_ndcg}
    return result


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: biases, norms and embeddings are not decayed (as nanoGPT
    and the SASRec reference implementations do); decaying item embeddings shrinks rare items."""
    decayed, plain = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            is_matrix = parameter.dim() >= 2 and name.startswith("weight")
            exempt = isinstance(module, (torch.nn.Embedding, RowShardedItemTable, torch.nn.LayerNorm))
            (decayed if is_matrix and not exempt else plain).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


# Above this many items the loss samples negatives unless `negatives` says otherwise.
SAMPLED_SOFTMAX_ABOVE, AUTO_NEGATIVES = 200_000, 1024


def model_config_of(config: TrainConfig, num_items: int) -> ModelConfig:
    """The model's shape from the trainer's hyper-parameters (`negatives` -1 resolved by catalogue size)."""
    negatives = config.negatives
    if negatives < 0:
        negatives = AUTO_NEGATIVES if num_items - 1 > SAMPLED_SOFTMAX_ABOVE else 0
    return ModelConfig(
        num_items, config.max_len, config.hidden_dim, config.num_layers, config.num_heads, config.dropout, config.model,
        config.ease_l2, config.knn_neighbours, config.knn_shrink, json.loads(config.family_settings),
        negatives=negatives, recency_decay=config.recency_decay,
    )  # fmt: skip


@dataclass
class Distributed:
    """Where this process sits in a torchrun job (a single process when not launched by torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class GpuMonitor:
    """Samples GPU utilisation with NVML (nvidia-ml-py) in the background, feeding the idle rule;
    no-op without a GPU (or with the fake feed of `training/idle.py`)."""

    def __init__(self, device: torch.device, rule: IdleRule | None = None):
        self.samples: list[float] = []
        self.rule = rule
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        read = self._reader(device)
        if read is None:
            return
        interval = sample_seconds()

        def sample() -> None:
            while not self._stop.wait(interval):
                value = read()
                self.samples.append(value)
                if self.rule is not None:
                    self.rule.observe(value, time.monotonic())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _reader(device: torch.device):
        fake = fake_utilisation()
        if fake is not None:
            return lambda: fake
        if device.type != "cuda":
            return None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:  # NVML missing or unusable: report what torch knows
            return None
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

    def idle_check(self, session: Session, state: dict[str, Any], sums: tuple[torch.Tensor, torch.Tensor]) -> None:
        """After a step: when the rule fired, write the checkpoint and stop (GpusIdle). Ranks of a
        DDP job decide together, at checkpoint steps, so none is left waiting for the others."""
        if self.rule is None:
            return
        fired = self.rule.fired(time.monotonic())
        if session.dist.world_size > 1:
            if state["step"] % session.config.checkpoint_every:
                return
            flag = torch.tensor([int(fired)], device=session.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            fired = bool(flag.item())
        if not fired:
            return
        save_progress(session, with_epoch_sums(session, state, *sums))
        raise GpusIdle(self.rule.reason(time.monotonic(), state["step"]))

    def stop(self, device: torch.device) -> dict[str, float]:
        self._stop.set()
        if device.type != "cuda":
            return {"gpu_utilization_mean_pct": sum(self.samples) / len(self.samples)} if self.samples else {}
        report = {
            "gpu_memory_peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
            "gpu_name": torch.cuda.get_device_name(device),
        }
        if self.samples:
            report |= {
                "gpu_utilization_mean_pct": sum(self.samples) / len(self.samples),
                "gpu_utilization_max_pct": max(self.samples),
            }
        return report


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
            monitor.idle_check(session, state, (loss_sum, target_count))
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


class ContractRefused(Exception):
    """The model family broke the task contract: the step fails once, naming the rule (a retry would
    break it again); the trainer exits with CONTRACT_EXIT_CODE."""


def is_fitted_family(config: TrainConfig) -> bool:
    """Whether the family is fitted in closed form (models/fitted.py) rather than by gradient steps."""
    try:
        family = resolve_family(config.model, FAMILIES, NextItemModel)
    except ContractViolation as error:
        raise ContractRefused(f"--model {config.model}: {error}") from None
    return issubclass(family, FittedNextItemModel)


def fit_in_closed_form(
    config: TrainConfig, data: Any, num_items: int, reporter: Reporter, source: str
) -> tuple[NextItemModel, torch.device]:
    """A fitted family (item-kNN, EASE, a team's FittedNextItemModel): probed like any family, then
    fitted once on every training interaction; nothing to resume. With `recency_decay` -1 the decay
    is the one that ranks each user's last training item best, fitted without it (as early
    stopping is chosen for the gradient families: the evaluated day is never looked at)."""
    device = resolve_device(config.device)
    try:
        model = build_model(model_config_of(config, num_items)).to(device)
        check_next_item_contract(model, device)
    except ValueError as error:
        raise ContractRefused(f"--model {config.model}: {error}") from None
    history = data.history
    if interactions_of(history, num_items, device) is None:
        raise SystemExit(f"{source}: no interactions in the training window; nothing to fit")
    if config.recency_decay < 0:
        model.config.recency_decay = chosen_recency_decay(model, history, num_items, device, config, reporter)
    interactions = interactions_of(history, num_items, device)
    started = time.perf_counter()
    with torch.no_grad():
        model.fit_interactions(interactions)
    reporter.info(
        f"fitted {config.model} on {device}: {interactions._nnz():,} interactions of {len(history.lengths):,} "
        f"users, {num_items - 1:,} items, recency decay {model.config.recency_decay:g}, "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return model.eval(), device


# The decays `recency_decay: -1` chooses among, by validation (1.0: every history item alike).
RECENCY_DECAYS = (1.0, 0.9, 0.7, 0.5, 0.3)


def chosen_recency_decay(
    model: NextItemModel, history: Any, num_items: int, device: torch.device, config: TrainConfig, reporter: Reporter
) -> float:
    train_history, validation_data = validation_split(history)
    validation = holdout_windows(validation_data, config.max_len)
    interactions = interactions_of(train_history, num_items, device)
    if interactions is None or not (validation.targets >= 0).any():
        return 1.0
    with torch.no_grad():
        model.fit_interactions(interactions)
    figures = {}
    for decay in RECENCY_DECAYS:
        model.config.recency_decay = decay
        figures[decay] = evaluate(model, validation.inputs, validation.targets, device, config.eval_k)[
            f"ndcg@{config.eval_k}"
        ]
    best = max(figures, key=figures.get)
    reporter.info(
        f"recency decay {best:g} chosen on each user's last training item: validation NDCG@{config.eval_k} "
        + ", ".join(f"{decay:g}: {value:.4f}" for decay, value in figures.items())
    )
    return best


def interactions_of(history: Any, num_items: int, device: torch.device) -> torch.Tensor | None:
    """The (users, num_items) 0/1 matrix of the histories, sparse (None when empty): each (user, item)
    once, since a user who came back to an item interacted with it, no more."""
    pairs = np.unique(np.repeat(np.arange(len(history.lengths)), history.lengths) * num_items + history.values)
    if len(pairs) == 0:
        return None
    indices = torch.as_tensor(np.stack([pairs // num_items, pairs % num_items]), dtype=torch.long)
    shape = (len(history.lengths), num_items)
    interactions = torch.sparse_coo_tensor(indices, torch.ones(len(pairs)), shape, check_invariants=True)
    return interactions.coalesce().to(device)


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
