"""Large models (issue 44): what sharding saves, and the trainers' speed at several sizes.

`python -m benchmarks.large_models memory [--items 5000000]` (CPU, gloo): one process trains a
catalogue of 5 million items with the sampled softmax and today's replicated model, then two
processes train it with `strategy: fsdp` (the item table split by rows, the network by FSDP2). Each
process reports the memory training added to it: its peak resident set (the kernel's high-water
mark) less its resident set before the model was built. Written to `results/large_models_memory.json`.

`python -m benchmarks.large_models gpu [--quick]` (any machine; meant for the GPU machine): SASRec
and HSTU at three sizes, with DDP and with FSDP over every GPU it finds (torchrun), each for two
epochs of generated windows; samples/s in the second epoch, peak GPU memory per process, and model
FLOP utilisation against the GPU's dense bf16 peak. Ratios are to SASRec-small with DDP in the same
run. Written to `results/large_models_gpu.json`.

Both start `python -m benchmarks.large_models worker` under torchrun, one case at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def flops_per_sample(family: str, max_len: int, hidden: int, layers: int, scored_items: int) -> float:
    """Training FLOPs of one window (3x the forward's matrix work): the blocks' projections, attention
    over the window, and the output layer against the items each position is scored against."""
    projections = 24 * hidden**2 if family == "sasrec" else 10 * hidden**2  # HSTU: UVQK and the output
    per_token = layers * (projections + 4 * max_len * hidden) + 2 * hidden * scored_items
    return 3.0 * max_len * per_token


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(case: dict) -> None:
    """One rank of one case: generated histories, the platform's `start` and `fit`, figures as JSON."""
    import torch

    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.training.data import RaggedSequences, SequenceData
    from algo_platform.training.runtime import Distributed
    from algo_platform.training.train import fit, start

    dist = Distributed.from_env()
    if dist.world_size > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rng = np.random.default_rng(0)
    users, length, items = case["users"], case["max_len"] + 1, case["items"]
    values = rng.integers(1, items, users * length)
    history = RaggedSequences(values, np.arange(0, users * length + 1, length))
    data = SequenceData(
        np.arange(users), history, RaggedSequences(np.zeros(0, np.int64), np.zeros(users + 1, np.int64))
    )
    config = TrainConfig(**case["config"])

    class Clock:
        epoch_ends: list[float] = []

        def info(self, message: str) -> None:
            if message.startswith("epoch "):
                Clock.epoch_ends.append(time.perf_counter())

    before = resident_bytes()
    session, state = start(config, data, items, case["output"], dist, Clock())
    started = time.perf_counter()
    state, samples = fit(session, state, Clock())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    ends = [started, *Clock.epoch_ends]
    last_epoch = ends[-1] - ends[-2]
    figures = {
        "rank": dist.rank,
        "world_size": dist.world_size,
        "peak_rss_added_gib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / 2**30,
        "samples_per_second": session.steps_per_epoch * config.batch_size / last_epoch,
        "final_loss": state["losses"][-1],
        "parameters_on_this_rank": sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel()
                                       for p in session.model.parameters()),
    }  # fmt: skip
    if torch.cuda.is_available():
        figures |= {
            "gpu_memory_peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "gpu": torch.cuda.get_device_name(),
        }
    print("FIGURES " + json.dumps(figures), flush=True)
    if dist.world_size > 1:
        torch.distributed.destroy_process_group()


def run(case: dict, processes: int) -> list[dict]:
    command = [sys.executable, "-m", "benchmarks.large_models", "worker", json.dumps(case)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   "-m", "benchmarks.large_models", "worker", json.dumps(case)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return [{"error": done.stderr[-800:]}]
    return sorted(
        (json.loads(line.split("FIGURES ", 1)[1]) for line in done.stdout.splitlines() if "FIGURES " in line),
        key=lambda row: row["rank"],
    )


def memory(args: argparse.Namespace) -> None:
    import tempfile

    base = {"epochs": 1, "patience": 0, "device": "cpu", "checkpoint_every": 10**9, "batch_size": 256,
            "max_len": 20, "hidden_dim": 64, "num_layers": 2, "num_heads": 2, "negatives": 1024}  # fmt: skip
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, processes, strategy in (("one process, replicated", 1, "ddp"), ("two processes, fsdp", 2, "fsdp")):
            case = {"users": 256 * args.steps, "max_len": 20, "items": args.items + 1, "output": f"{folder}/{strategy}",
                    "config": {**base, "strategy": strategy}}  # fmt: skip
            started = time.perf_counter()
            rows[name] = {"ranks": run(case, processes), "wall_seconds": time.perf_counter() - started}
            print(name, json.dumps(rows[name]), flush=True)
    unsharded = rows["one process, replicated"]["ranks"][0]["peak_rss_added_gib"]
    sharded = max(rank["peak_rss_added_gib"] for rank in rows["two processes, fsdp"]["ranks"])
    result = {"items": args.items, "steps": args.steps, "hidden_dim": 64, "negatives": 1024, "cases": rows,
              "largest_sharded_rank_over_unsharded": sharded / unsharded}  # fmt: skip
    print(f"each fsdp rank needs at most {sharded:.2f} GiB, {sharded / unsharded:.2f}x one unsharded process's "
          f"{unsharded:.2f} GiB")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large_models_memory.json").write_text(json.dumps(result, indent=2))


def gpu(args: argparse.Namespace) -> None:
    import tempfile

    import torch

    gpus = torch.cuda.device_count()
    scale = 20 if args.quick else 1
    sizes = {"small": (64, 2, 2), "medium": (256, 4, 4), "large": (1024, 8, 8)}
    if args.quick:
        sizes = {"small": (32, 1, 2)}
    items, max_len = 1_000_000 // scale, 200 // (10 if args.quick else 1)
    rows = []
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as folder:
        for family in ("sasrec", "hstu"):
            for size, (hidden, layers, heads) in sizes.items():
                for strategy in ("ddp", "fsdp"):
                    config = {"model": family, "epochs": 2, "patience": 0, "device": "auto", "batch_size": 256,
                              "checkpoint_every": 10**9, "max_len": max_len, "hidden_dim": hidden,
                              "num_layers": layers, "num_heads": heads, "negatives": 1024,
                              "strategy": strategy}  # fmt: skip
                    output = f"{folder}/{family}-{size}-{strategy}"
                    case = {"users": 256 * (40 // scale), "max_len": max_len, "items": items, "output": output,
                            "config": config}  # fmt: skip
                    ranks = run(case, max(1, gpus))
                    row = {"family": family, "size": size, "strategy": strategy, "processes": max(1, gpus), **ranks[0]}
                    if "error" not in row:
                        flops = flops_per_sample(family, max_len, hidden, layers, 256 * max_len // max(1, gpus) + 1024)
                        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in row.get("gpu", "")), float("nan"))
                        row["model_tflops"] = row["samples_per_second"] * flops / 1e12
                        row["mfu"] = row["model_tflops"] / peak
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    baseline = next((r["samples_per_second"] for r in rows if "error" not in r), float("nan"))
    for row in rows:
        row["samples_per_second_vs_first"] = row.get("samples_per_second", float("nan")) / baseline
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large_models_gpu.json").write_text(json.dumps({"gpus": gpus, "rows": rows}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    measured = commands.add_parser("memory")
    measured.add_argument("--items", type=int, default=5_000_000)
    measured.add_argument("--steps", type=int, default=8)
    commands.add_parser("gpu").add_argument("--quick", action="store_true")
    commands.add_parser("worker").add_argument("case")
    args = parser.parse_args()
    if args.command == "worker":
        worker(json.loads(args.case))
    else:
        {"memory": memory, "gpu": gpu}[args.command](args)


if __name__ == "__main__":
    main()
