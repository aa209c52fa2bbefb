"""The trainer on a GPU: samples/s, bf16 against fp32, torch.compile, and model FLOP utilisation.

`python -m benchmarks.trainer_gpu [--quick]` runs the real trainer (`algo_platform.training.train`)
on generated sequences for the default model and a larger one, and writes
`results/trainer_gpu.json` and a Markdown table. It needs only torch, numpy and pyarrow, so it runs
on a bare GPU machine. Throughput is taken between epoch ends (the trainer synchronises there), so
start-up and compilation are excluded; the first epoch is warm-up. Ratios are to the default model
in fp32 measured in the same run.

Model FLOPs per training sample count the matrix work of SASRec (3x the forward pass: QKV,
projection and MLP, attention scores and values over the window, and the full-catalogue output
layer at every position), as in the PaLM paper's MFU; the peak is the GPU's dense bf16 figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS = Path(__file__).parent / "results"
# Dense (no sparsity) bf16 tensor-core peaks from the vendor's data sheets, TFLOP/s.
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def write_sequences(folder: str, users: int, length: int, items: int, seed: int = 0) -> tuple[str, str]:
    """training_sequences with `users` histories of `length` items: Zipf-popular items with a
    learnable order (most steps go to a nearby item), and one held-out item per user."""
    rng = np.random.default_rng(seed)
    total = users * (length + 1)
    popular = np.minimum(rng.zipf(1.2, total), items) - 1
    steps = rng.integers(1, 8, total)
    # A walk step moves to a nearby item; a non-walk step (and each user's first) jumps to a popular one.
    anchor = (rng.random(total) >= 0.7) | (np.arange(total) % (length + 1) == 0)
    anchor_at = np.maximum.accumulate(np.where(anchor, np.arange(total), 0))
    walked = np.cumsum(np.where(anchor, 0, steps))
    sequences = (popular[anchor_at] + walked - walked[anchor_at]) % items
    sequences = sequences.reshape(users, length + 1) + 1  # item index 0 is padding
    table = pa.table(
        {
            "user_id": np.arange(1, users + 1, dtype=np.int64),
            "history": pa.array(list(sequences[:, :-1]), type=pa.list_(pa.int64())),
            "holdout": pa.array(list(sequences[:, -1:]), type=pa.list_(pa.int64())),
        }
    )
    vocabulary = pa.table(
        {"item_index": np.arange(1, items + 1, dtype=np.int64), "item_id": np.arange(1, items + 1, dtype=np.int64)}
    )
    sequences_path, vocabulary_path = f"{folder}/sequences.parquet", f"{folder}/vocabulary.parquet"
    pq.write_table(table, sequences_path)
    pq.write_table(vocabulary, vocabulary_path)
    return sequences_path, vocabulary_path


def sasrec_flops_per_sample(max_len: int, hidden: int, layers: int, items: int) -> float:
    """Training FLOPs of one window of max_len positions (forward x3)."""
    per_token = layers * (24 * hidden**2 + 4 * max_len * hidden) + 2 * hidden * (items + 1)
    return 3.0 * max_len * per_token


class EpochClock:
    """A trainer Reporter that notes the time of every epoch end."""

    def __init__(self) -> None:
        self.epoch_ends: list[float] = []

    def info(self, message: str) -> None:
        if message.startswith("epoch "):
            self.epoch_ends.append(time.perf_counter())

    def materialization(self, metadata: dict) -> None:
        pass


def run_case(name: str, config, data: tuple[str, str], folder: str, items: int) -> dict:
    import torch

    from algo_platform.training.train import train

    clock = EpochClock()
    result = train(config, *data, f"{folder}/{name}", clock)
    per_epoch = result["train_windows"] / np.diff(clock.epoch_ends)
    steady = float(np.median(per_epoch)) if len(per_epoch) else float("nan")
    flops = sasrec_flops_per_sample(config.max_len, config.hidden_dim, config.num_layers, items)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = next((value for key, value in PEAK_BF16_TFLOPS.items() if key in gpu), float("nan"))
    achieved = steady * flops / 1e12 if config.model == "sasrec" else float("nan")
    return {
        "case": name,
        "config": asdict(config),
        "gpu": gpu,
        "samples_per_second": steady,
        "model_tflops": achieved,
        "mfu": achieved / peak,
        "gpu_memory_peak_gib": result.get("gpu_memory_peak_gib"),
        "final_loss": result["final_loss"],
        "holdout_ndcg@10": result["holdout_ndcg@10"],
        "popularity_ndcg@10": result["holdout_popularity_ndcg@10"],
    }


def main() -> None:
    import torch

    from algo_platform.core.hyperparameters import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script on a CPU")
    args = parser.parse_args()
    scale = 50 if args.quick else 1
    default = {"items": 20_000 // scale, "users": 30_000 // scale, "length": 200}
    large = {"items": 200_000 // scale, "users": 6_000 // scale, "length": 400}
    base = {"epochs": 3, "patience": 0, "device": "auto", "checkpoint_every": 10**9}
    larger = {"hidden_dim": 512, "num_layers": 4, "num_heads": 8, "max_len": 200, "batch_size": 256}
    if args.quick:
        larger = {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "max_len": 20, "batch_size": 64}
    cases = [
        ("default-fp32", default, {"precision": "fp32"}),
        ("default-bf16", default, {}),
        ("default-bf16-batch1024", default, {"batch_size": 1024}),
        ("default-gru4rec-bf16", default, {"model": "gru4rec"}),
        ("large-bf16", large, larger),
        ("large-bf16-compile", large, {**larger, "compile": not args.quick}),
        ("large-fp32", large, {**larger, "precision": "fp32"}),
    ]
    rows = []
    # Checkpoints go to memory where it exists, so epoch times measure training, not the disk.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as folder:
        written: dict[str, tuple[str, str]] = {}
        for name, data, overrides in cases:
            key = json.dumps(data, sort_keys=True)
            if key not in written:
                sub = f"{folder}/data-{len(written)}"
                Path(sub).mkdir()
                written[key] = write_sequences(sub, data["users"], data["length"], data["items"])
            config = TrainConfig(**{**base, **overrides})
            started = time.perf_counter()
            try:
                row = run_case(name, config, written[key], folder, data["items"])
            except Exception as error:  # one failing case still leaves the others' figures
                row = {"case": name, "error": f"{type(error).__name__}: {error}"[:500]}
            row["wall_seconds"] = time.perf_counter() - started
            rows.append(row)
            print(json.dumps(row), flush=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    baseline = next((r["samples_per_second"] for r in rows if r["case"] == "default-fp32" and "error" not in r), None)
    lines = [
        f"Trainer on {rows[0].get('gpu', '?')}: steady samples/s between epoch ends (windows of max_len), "
        "ratio to default-fp32 in the same run; MFU against the dense bf16 peak",
        "",
        "| case | samples/s | vs default-fp32 | model TFLOP/s | MFU | GPU memory GiB | NDCG@10 | popularity NDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error'][:80]} | | | | | | |")
            continue
        ratio = r["samples_per_second"] / baseline if baseline else float("nan")
        lines.append(
            f"| {r['case']} | {r['samples_per_second']:,.0f} | {ratio:.2f}x | {r['model_tflops']:.1f} | "
            f"{r['mfu']:.1%} | {r['gpu_memory_peak_gib'] or 0:.1f} | {r['holdout_ndcg@10']:.4f} | "
            f"{r['popularity_ndcg@10']:.4f} |"
        )
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trainer_gpu.json").write_text(json.dumps({"rows": rows}, indent=2, default=str))
    (RESULTS / "trainer_gpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
