"""Launches the trainer through Dagster Pipes. Assets call `launcher.run_trainer(...)` and do
not know whether it runs as a local subprocess or (later) a Kubernetes pod."""

import os
import sys
from collections.abc import Mapping, Sequence

import dagster as dg

from algo_platform.pipeline.resources.pipes_messages import WholeLineTempFileMessageReader
from algo_platform.training.watchdog import LAUNCHER_PID_ENV

TRAINER_MODULE = "algo_platform.training"


class TrainingLauncher(dg.ConfigurableResource):
    """Interface: run `python -m algo_platform.training ARGS` and return the Pipes invocation."""

    def run_trainer(
        self, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, object] | None = None
    ) -> dg.PipesClientCompletedInvocation:
        raise NotImplementedError


class SubprocessTrainingLauncher(TrainingLauncher):
    """Runs the trainer as a local subprocess with PipesSubprocessClient (the laptop default)."""

    python_executable: str = ""  # empty: the interpreter running Dagster
    env: dict[str, str] = {}

    def run_trainer(
        self, context: dg.AssetExecutionContext, args: Sequence[str], extras: Mapping[str, object] | None = None
    ) -> dg.PipesClientCompletedInvocation:
        command = [self.python_executable or sys.executable, "-m", TRAINER_MODULE, *args]
        context.log.info("launching trainer: " + " ".join(command))
        # The trainer exits when this process dies (algo_platform/training/watchdog.py).
        env = {**self.env, LAUNCHER_PID_ENV: str(os.getpid())}
        client = dg.PipesSubprocessClient(env=env, message_reader=WholeLineTempFileMessageReader())
        return client.run(context=context, command=command, extras=dict(extras or {}))
