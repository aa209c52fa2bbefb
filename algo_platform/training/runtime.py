"""What a trainer process sets up before it trains, shared by the next-item and the engagement
trainers: its device, where it sits in a torchrun job, how it reports (Dagster Pipes or log lines),
and the refusal that ends it with CONTRACT_EXIT_CODE."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch


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


class ContractRefused(Exception):
    """The model family broke the task contract: the step fails once, naming the rule (a retry would
    break it again); the trainer exits with CONTRACT_EXIT_CODE."""
