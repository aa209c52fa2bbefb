"""Train an engagement model: `python -m algo_platform.tasks.engagement.train --inputs inputs.json`.

The task contract's inputs arrive as the Pipes extra `task` when Dagster launches it (or a JSON
file by hand). Small steps: `fit` runs `one_epoch`, `validate` and `save_progress` until the epochs
are done or validation AUC stops improving; a retry resumes from the checkpoint of the last epoch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from algo_platform.core.families import ContractViolation
from algo_platform.core.hyperparameters import EngagementHyperparameters
from algo_platform.models import EngagementConfig, EngagementModel, build_engagement_model, model_state
from algo_platform.tasks.contract import EXTRA_KEY, TaskInputs
from algo_platform.tasks.engagement.features import FEATURES, feature_matrix
from algo_platform.tasks.engagement.metrics import probability_metrics
from algo_platform.training.artifacts import CHECKPOINT_NAME, MODEL_NAME, load_checkpoint, save_checkpoint
from algo_platform.training.gpu_monitor import GpuMonitor
from algo_platform.training.runtime import Reporter, resolve_device
from algo_platform.training.storage import exists, read_bytes
from algo_platform.training.watchdog import exit_with_launcher

PRIMARY_METRIC = "auc"


@dataclass
class Split:
    features: torch.Tensor
    labels: torch.Tensor


def read_splits(uri: str, device: torch.device) -> tuple[dict[str, Split], np.ndarray, np.ndarray]:
    """The examples' train and validation splits, standardised with the train split's mean and std."""
    table = pq.read_table(pa.BufferReader(read_bytes(uri)), columns=["split", "label", *FEATURES]).to_pandas()
    train = table[table["split"] == "train"]
    if train.empty or train["label"].nunique() < 2:
        raise SystemExit(f"{uri}: the training days hold no impressions of both labels; nothing to learn from")
    matrix = feature_matrix(train)
    mean, std = matrix.mean(axis=0), matrix.std(axis=0) + 1e-6
    splits = {}
    for name in ("train", "validation"):
        part = table[table["split"] == name]
        splits[name] = Split(
            torch.as_tensor((feature_matrix(part) - mean) / std, device=device),
            torch.as_tensor(part["label"].to_numpy(np.float32), device=device),
        )
    return splits, mean, std


def one_epoch(
    model: EngagementModel, optimizer: torch.optim.Optimizer, data: Split, batch_size: int, generator: torch.Generator
) -> float:
    model.train()
    order = torch.randperm(len(data.labels), generator=generator).to(data.labels.device)
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        loss = F.binary_cross_entropy_with_logits(model(data.features[batch]), data.labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    return total / max(len(order), 1)


@torch.no_grad()
def validate(model: EngagementModel, data: Split) -> dict[str, float]:
    model.eval()
    logits = model(data.features)
    if logits.shape != data.labels.shape:
        raise ContractViolation(
            "one logit per example",
            f"{type(model).__name__}(features) returned shape {tuple(logits.shape)}, expected ({len(data.labels)},)",
        )
    metrics = probability_metrics(data.labels.cpu().numpy(), torch.sigmoid(logits).cpu().numpy())
    return {"auc": metrics["auc"], "log_loss": metrics["log_loss"], "ece": metrics["ece"]}


def fit(inputs: TaskInputs, reporter: Reporter) -> dict[str, Any]:
    hp = EngagementHyperparameters.of(inputs.hyperparameters)
    torch.manual_seed(hp.seed)
    device = resolve_device(inputs.device)
    monitor = GpuMonitor(device)
    splits, mean, std = read_splits(inputs.tables["examples"], device)
    config = EngagementConfig(len(FEATURES), hp.hidden_dim, hp.num_layers, hp.dropout, hp.family)
    model = build_engagement_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    checkpoint_uri = f"{inputs.checkpoint_dir.rstrip('/')}/{CHECKPOINT_NAME}"
    progress: dict[str, Any] = {"epochs": [], "best_auc": -1.0, "best_epoch": 0}
    if exists(checkpoint_uri):
        saved = load_checkpoint(checkpoint_uri, device)
        model.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        progress = saved["progress"]
        reporter.info(f"resuming from {checkpoint_uri} after epoch {len(progress['epochs'])}")
    generator = torch.Generator().manual_seed(hp.seed)
    reporter.info(f"training {hp.family} on {device}: {len(splits['train'].labels)} examples, {len(FEATURES)} features")
    while len(progress["epochs"]) < hp.epochs and not progress.get("stopped_early"):
        epoch = len(progress["epochs"]) + 1
        generator.manual_seed(hp.seed + epoch)
        loss = one_epoch(model, optimizer, splits["train"], hp.batch_size, generator)
        metrics = {"loss": loss, **{f"validation_{k}": v for k, v in validate(model, splits["validation"]).items()}}
        progress = save_progress(checkpoint_uri, model, optimizer, progress, metrics, hp.patience)
        reporter.info(f"epoch {epoch}/{hp.epochs} " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if "best_state" in progress:
        model.load_state_dict(progress["best_state"])
    model_uri = f"{inputs.output_dir.rstrip('/')}/{MODEL_NAME}"
    save_checkpoint(
        model_uri,
        {**model_state(model), "feature_names": list(FEATURES), "feature_mean": torch.from_numpy(mean),
         "feature_std": torch.from_numpy(std), "metrics_per_epoch": progress["epochs"]},
    )  # fmt: skip
    best = progress["epochs"][progress["best_epoch"] - 1]
    return {
        "model_uri": model_uri,
        "model_format": "torch-state",
        "metrics_per_epoch": progress["epochs"],
        f"validation_{PRIMARY_METRIC}": best["validation_auc"],
        "validation_log_loss": best["validation_log_loss"],
        "best_epoch": progress["best_epoch"],
        "epochs": len(progress["epochs"]),
        "train_examples": len(splits["train"].labels),
        "device": str(device),
        **monitor.stop(device),
    }


def save_progress(
    checkpoint_uri: str,
    model: EngagementModel,
    optimizer: torch.optim.Optimizer,
    progress: dict[str, Any],
    metrics: dict[str, float],
    patience: int,
) -> dict[str, Any]:
    """Progress after an epoch (the best weights kept, early stop decided), saved for a retry to resume."""
    epochs = [*progress["epochs"], metrics]
    progress = {**progress, "epochs": epochs}
    if metrics["validation_auc"] > progress["best_auc"]:
        best_state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
        progress |= {"best_auc": metrics["validation_auc"], "best_epoch": len(epochs), "best_state": best_state}
    elif patience and len(epochs) - progress["best_epoch"] >= patience:
        progress["stopped_early"] = True
    save_checkpoint(
        checkpoint_uri,
        {**model_state(model), "optimizer_state": optimizer.state_dict(), "progress": progress},
    )
    return progress


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m algo_platform.tasks.engagement.train", description=__doc__)
    parser.add_argument("--inputs", help="TaskInputs as a JSON file (when not launched by Dagster)")
    args = parser.parse_args(argv)
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    exit_with_launcher()
    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            result = fit(TaskInputs.from_mapping(pipes.extras[EXTRA_KEY]), Reporter(pipes))
            pipes.report_asset_materialization(metadata=reported_metadata(result))
        return
    if not args.inputs:
        raise SystemExit("--inputs is required when not launched by Dagster")
    with open(args.inputs) as file:
        result = fit(TaskInputs.from_mapping(json.load(file)), Reporter(None))
    print(json.dumps({k: v for k, v in result.items()}, default=str))


def reported_metadata(result: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in result.items() if k not in ("metrics_per_epoch", "model_uri")},
        "metrics_per_epoch": {"raw_value": result["metrics_per_epoch"], "type": "json"},
        "model_uri": {"raw_value": result["model_uri"], "type": "path"},
    }


if __name__ == "__main__":
    main()
