"""Train the sequence model: `python -m algo_platform.training --help`.

Reads `training_sequences` and `item_vocabulary` Parquet files, trains with AdamW (warmup +
cosine decay, gradient clipping, bf16 autocast on CUDA), checkpoints every epoch, resumes from
the last checkpoint in the output folder, and reports per-epoch loss and final hold-out metrics
through Dagster Pipes when launched by Dagster (plain log lines otherwise).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import sys
import time
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from algo_platform.training.config import TrainConfig
from algo_platform.training.data import holdout_windows, popularity_scores, read_sequences, training_windows
from algo_platform.training.metrics import hit_rate_and_ndcg, target_ranks
from algo_platform.training.model import PAD, ModelConfig, SASRec
from algo_platform.training.storage import exists, read_bytes, write_bytes_atomically

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"


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


def read_vocabulary_size(uri: str) -> int:
    vocabulary = pq.read_table(pa.BufferReader(read_bytes(uri)), columns=["item_index"])
    return int(vocabulary.column("item_index").to_numpy().max(initial=0)) + 1


@torch.no_grad()
def evaluate(
    model: SASRec,
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
    for start in range(0, len(inputs), batch_size):
        batch_inputs = torch.as_tensor(inputs[start : start + batch_size], device=device)
        batch_targets = torch.as_tensor(targets[start : start + batch_size], device=device)
        scored = batch_targets >= 0
        hidden = model(batch_inputs)[scored]
        wanted = batch_targets[scored]
        model_ranks.append(target_ranks(model.item_scores(hidden), wanted).cpu())
        if baseline is not None:
            baseline_ranks.append(target_ranks(baseline.expand(len(wanted), -1), wanted).cpu())
    ranks = torch.cat(model_ranks) if model_ranks else torch.empty(0, dtype=torch.long)
    hr, ndcg = hit_rate_and_ndcg(ranks, k)
    result = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "targets": int(ranks.numel())}
    if baseline is not None:
        base_hr, base_ndcg = hit_rate_and_ndcg(torch.cat(baseline_ranks) if baseline_ranks else ranks[:0], k)
        result |= {f"popularity_hr@{k}": base_hr, f"popularity_ndcg@{k}": base_ndcg}
    return result


def save_checkpoint(uri: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomically(uri, buffer.getvalue())


def load_checkpoint(uri: str, device: torch.device) -> dict[str, Any]:
    return torch.load(io.BytesIO(read_bytes(uri)), map_location=device, weights_only=False)


def load_model(uri: str, device: torch.device) -> SASRec:
    """Load a trained model written by `train` (used by the evaluation asset)."""
    state = load_checkpoint(uri, device)
    model = SASRec(ModelConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model_state"])
    model.eval()
    return model


def train(
    config: TrainConfig, sequences_uri: str, vocabulary_uri: str, output_dir: str, reporter: Reporter
) -> dict[str, Any]:
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    data = read_sequences(sequences_uri)
    num_items = read_vocabulary_size(vocabulary_uri)
    windows = torch.as_tensor(training_windows(data.history, config.max_len))
    if len(windows) == 0:
        raise SystemExit(f"{sequences_uri}: no user has two or more items in the training window; nothing to train on")
    # The whole training set lives on the device: batches are index slices, no per-sample Python.
    windows = windows.to(device, non_blocking=True)
    model_config = ModelConfig(
        num_items, config.max_len, config.hidden_dim, config.num_layers, config.num_heads, config.dropout
    )
    model = SASRec(model_config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=device.type == "cuda"
    )
    steps_per_epoch = -(-len(windows) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(steps_per_epoch * config.epochs, config.warmup_fraction)
    )
    forward = torch.compile(model) if config.compile else model
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    checkpoint_uri = f"{output_dir.rstrip('/')}/{CHECKPOINT_NAME}"
    losses: list[float] = []
    start_epoch = 0
    if exists(checkpoint_uri):
        state = load_checkpoint(checkpoint_uri, device)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        losses, start_epoch = state["losses"], state["epoch"] + 1
        reporter.info(f"resuming from {checkpoint_uri} after epoch {start_epoch}")

    reporter.info(
        f"training on {device}: {len(windows)} windows of {config.max_len}, {num_items - 1} items, "
        f"{sum(p.numel() for p in model.parameters())} parameters"
    )
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    started = time.perf_counter()
    samples = 0
    for epoch in range(start_epoch, config.epochs):
        generator.manual_seed(config.seed + epoch)  # the same order whether or not we resumed
        order = torch.randperm(len(windows), generator=generator).to(device)
        model.train()
        total_loss = torch.zeros((), device=device)
        total_targets = 0
        for step in range(steps_per_epoch):
            batch = windows[order[step * config.batch_size : (step + 1) * config.batch_size]].long()
            inputs, targets = batch[:, :-1], batch[:, 1:]
            with autocast:
                hidden = forward(inputs)
            # A target counts only when its input is a real item: nothing predicts a user's first item.
            mask = (targets != PAD) & (inputs != PAD)
            scores = model.item_scores(hidden[mask].float())
            loss = F.cross_entropy(scores, targets[mask])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += loss.detach() * mask.sum()
            total_targets += int(mask.sum())
            samples += len(batch)
        epoch_loss = (total_loss / max(total_targets, 1)).item()
        losses.append(epoch_loss)
        reporter.info(f"epoch {epoch + 1}/{config.epochs} loss {epoch_loss:.4f} lr {scheduler.get_last_lr()[0]:.2e}")
        save_checkpoint(
            checkpoint_uri,
            {
                "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(),
                "losses": losses,
                "epoch": epoch,
                "model_config": model_config.to_dict(),
                "train_config": asdict(config),
            },
        )
    elapsed = time.perf_counter() - started

    evaluation = holdout_windows(data, config.max_len)
    metrics = evaluate(
        model,
        evaluation.inputs,
        evaluation.targets,
        device,
        config.eval_k,
        baseline_scores=popularity_scores(data.history, num_items),
    )
    model_uri = f"{output_dir.rstrip('/')}/{MODEL_NAME}"
    save_checkpoint(
        model_uri,
        {
            "model_state": model.state_dict(),
            "model_config": model_config.to_dict(),
            "train_config": asdict(config),
            "losses": losses,
            "metrics": metrics,
        },
    )
    result = {
        "model_uri": model_uri,
        "device": str(device),
        "epochs": config.epochs,
        "final_loss": losses[-1],
        "losses": losses,
        "train_windows": len(windows),
        "num_items": num_items - 1,
        "samples_per_second": samples / elapsed if elapsed > 0 and samples else 0.0,
        **{f"holdout_{name}": value for name, value in metrics.items()},
    }
    reporter.materialization(
        {
            **{key: value for key, value in result.items() if key not in ("losses", "model_uri")},
            "loss_per_epoch": {"raw_value": losses, "type": "json"},
            "model_uri": {"raw_value": model_uri, "type": "path"},
        }
    )
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m algo_platform.training",
        description="Train the SASRec-style next-item model on a training_sequences Parquet file.",
    )
    parser.add_argument("--sequences", required=True, help="training_sequences Parquet (path or URI)")
    parser.add_argument("--vocabulary", required=True, help="item_vocabulary Parquet (path or URI)")
    parser.add_argument("--output-dir", required=True, help="folder (path or URI) for checkpoint.pt and model.pt")
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            kind = {"int": int, "float": float, "str": str}[str(field.type)]
            parser.add_argument(flag, type=kind, default=field.default, help=f"default {field.default}")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            train(config, args.sequences, args.vocabulary, args.output_dir, Reporter(pipes))
    else:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
        train(config, args.sequences, args.vocabulary, args.output_dir, Reporter(None))
