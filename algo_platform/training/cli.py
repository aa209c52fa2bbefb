"""The trainer's command line: `python -m algo_platform.training --help`. Every flag is a field of
`TrainConfig` (core/hyperparameters.py); under Dagster Pipes rank 0 reports, and a contract refusal
or idle GPUs end the process with their own exit status."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

import torch

from algo_platform.core.families import CONTRACT_EXIT_CODE
from algo_platform.core.hyperparameters import TrainConfig, python_type
from algo_platform.training.idle import IDLE_EXIT_CODE, GpusIdle
from algo_platform.training.runtime import ContractRefused, Distributed, Reporter
from algo_platform.training.train import train
from algo_platform.training.watchdog import exit_with_launcher


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m algo_platform.training",
        description="Train a next-item model of any family on a training_sequences Parquet file.",
    )
    parser.add_argument("--sequences", required=True, help="training_sequences Parquet (path or URI)")
    parser.add_argument("--vocabulary", required=True, help="item_vocabulary Parquet (path or URI)")
    parser.add_argument("--output-dir", required=True, help="folder (path or URI) for checkpoint.pt and model.pt")
    for field in fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (default {field.default})"
        kind = python_type(field.type)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=field.default, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    exit_with_launcher()
    dist = Distributed.from_env()
    if dist.world_size > 1:
        backend = "nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    try:
        # One Pipes session per pod: rank 0 reports; the other ranks only log.
        if dist.is_main and PipesEnvVarParamsLoader().is_dagster_pipes_process():
            with open_dagster_pipes() as pipes:
                try:
                    train(config, args.sequences, args.vocabulary, args.output_dir, Reporter(pipes), dist)
                except (GpusIdle, ContractRefused) as stopped:
                    pipes.log.error(str(stopped))  # the run's reason, in Dagster's event log
                    raise
        else:
            train(config, args.sequences, args.vocabulary, args.output_dir, Reporter(None), dist)
    except GpusIdle as idle:
        print(f"algo-platform trainer: {idle}", file=sys.stderr)
        sys.exit(IDLE_EXIT_CODE)
    except ContractRefused as refused:
        print(f"algo-platform trainer: {refused}", file=sys.stderr)
        sys.exit(CONTRACT_EXIT_CODE)
    finally:
        if dist.world_size > 1:
            torch.distributed.destroy_process_group()
