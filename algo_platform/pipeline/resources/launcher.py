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
        env = {**self.env, LAUNCHER_PID_ENV: str(os.getpid())}
        client = dg.PipesSubprocessClient(env=env, cwd=cwd, message_reader=WholeLineTempFileMessageReader())
        return client.run(context=context, command=command, extras=dict(extras))
