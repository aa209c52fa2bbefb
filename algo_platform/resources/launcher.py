"""Launches the trainer through Dagster Pipes. Assets call `launcher.run_trainer(...)` and do
not know whether it runs as a local subprocess or (later) a Kubernetes pod."""

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from algo_platform.core import environment
from algo_platform.resources.gpu_usage import usage_metadata
from algo_platform.resources.pipes_messages import WholeLineTempFileMessageReader
from algo_platform.training.watchdog import LAUNCHER_PID_ENV

TRAINER_MODULE = "algo_platform.training"


class TrainingLauncher(dg.ConfigurableResource):
    """Interface: run `python -m algo_platform.training ARGS` and return the Pipes invocation."""

    # Per step: (seconds queued for GPUs, seconds the GPUs were held), for `gpu_usage`.
    _timings: dict[str, tuple[float, float]] = PrivateAttr(default_factory=dict)

    def gpu_usage(self, context: dg.AssetExecutionContext, reported: Mapping[str, Any]) -> dict[str, float]:
        """GPU-hours, queue wait, mean utilisation and efficiency of the step's last launch."""
        queued, held = self._timings.get(str(context.op_handle), (0.0, 0.0))
        return usage_metadata(dict(reported), self.gpus_held(reported), held, queued)

    def gpus_held(self, reported: Mapping[str, Any]) -> int:
        """GPUs the launch held: locally, the trainer's processes when it trained on CUDA."""
        return int(reported.get("processes", 1)) if str(reported.get("device", "")).startswith("cuda") else 0

    def _record(self, context: dg.AssetExecutionContext, started: float, queued: float = 0.0) -> None:
        self._timings[str(context.op_handle)] = (queued, time.monotonic() - started - queued)

    def run_trainer(
        self, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, object] | None = None
    ) -> dg.PipesClientCompletedInvocation:
        raise NotImplementedError

    def run_task(
        self,
        context: dg.AssetExecutionContext,
        command: Sequence[str],
        extras: Mapping[str, object],
        image: str | None = None,
        cwd: str | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        """Run a task's own command (a task type's trainer, or a team's program) through Pipes.
        `image` is where it runs on Kubernetes; `cwd` where it runs locally (the project's folder)."""
        raise NotImplementedError


class SubprocessTrainingLauncher(TrainingLauncher):
    """Runs the trainer as a local subprocess with PipesSubprocessClient (the laptop default)."""

    python_executable: str = ""  # empty: the interpreter running Dagster
    env: dict[str, str] = {}

    def run_trainer(
        self, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, object] | None = None
    ) -> dg.PipesClientCompletedInvocation:
        command = [self.python_executable or sys.executable, "-m", TRAINER_MODULE, *args]
        return self.run_task(context, command, dict(extras or {}))

    def run_task(
        self,
        context: dg.AssetExecutionContext,
        command: Sequence[str],
        extras: Mapping[str, object],
        image: str | None = None,
        cwd: str | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        # `python` in a task's command is this environment's interpreter (where the platform is installed).
        command = [self.python_executable or sys.executable, *command[1:]] if command[0] == "python" else list(command)
        context.log.info("launching trainer: " + " ".join(command))
        # The trainer exits when this process dies (algo_platform/training/watchdog.py).
        env = {**self.env, **environment.hidden_from_programs(), LAUNCHER_PID_ENV: str(os.getpid())}
        client = dg.PipesSubprocessClient(env=env, cwd=cwd, message_reader=WholeLineTempFileMessageReader())
        started = time.monotonic()
        invocation = client.run(context=context, command=command, extras=dict(extras))
        self._record(context, started)
        return invocation
