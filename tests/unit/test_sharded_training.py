"""Sharded training (compute.strategy: fsdp) on CPU with gloo: the same losses as one process, and a
checkpoint every rank wrote its shards of that resumes at another world size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.support.factories import write_inputs
from tests.unit.test_training import trainer_command


def torchrun(processes: int, command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return subprocess.run([*launcher, *command[1:]], capture_output=True, text=True, timeout=600, env=env)


def test_fsdp_on_two_processes_trains_what_ddp_and_one_process_train(tmp_path):
    sequences, vocabulary = write_inputs(tmp_path, users=96)
    common = ("--epochs", "3", "--patience", "2", "--batch-size", "16", "--num-layers", "2")

    def trained(processes: int, name: str, *extra: str) -> dict:
        command = trainer_command(sequences, vocabulary, str(tmp_path / name), *common, *extra)
        done = (
            torchrun(processes, command) if processes > 1 else subprocess.run(command, capture_output=True, text=True)
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return torch.load(tmp_path / name / "model.pt", weights_only=False)

    single, replicated, sharded = trained(1, "one"), trained(2, "ddp"), trained(2, "fsdp", "--strategy", "fsdp")
    # The same steps as DDP to float error: the same batches, the same gradient average.
    assert sharded["losses"] == pytest.approx(replicated["losses"], rel=1e-6)
    # The registered file is one consolidated model, named as a plain model's weights are.
    assert sharded["model_state"].keys() == single["model_state"].keys()
    for name, weights in replicated["model_state"].items():
        torch.testing.assert_close(sharded["model_state"][name], weights, rtol=0, atol=1e-5)
    # And one process's curve: each rank averages over its own positions, so not to the bit.
    assert sharded["losses"] == pytest.approx(single["losses"], rel=1e-3)
    assert sharded["metrics"]["ndcg@10"] == pytest.approx(single["metrics"]["ndcg@10"], abs=5e-3)
    # Every rank wrote its own shards of the checkpoint.
    (folder,) = (tmp_path / "fsdp" / "sharded-checkpoint").glob("step-*")
    assert sorted(p.name for p in folder.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]


def test_a_checkpoint_written_by_two_ranks_resumes_at_one_and_at_four(tmp_path):
    """The row-sharded table (sampled loss) and the network are split across 2 ranks; a stop after a
    checkpoint (the idle rule) leaves their shards, which 1 and 4 processes load and train on."""
    from algo_platform.training.idle import FAKE_UTILISATION_ENV, SAMPLE_SECONDS_ENV, idle_rule_environment

    sequences, vocabulary = write_inputs(tmp_path, users=96)
    common = (
        "--epochs", "6", "--patience", "0", "--batch-size", "16", "--strategy", "fsdp", "--negatives", "40",
        "--checkpoint-every", "4",
    )  # fmt: skip
    whole = torchrun(2, trainer_command(sequences, vocabulary, str(tmp_path / "whole"), *common))
    assert whole.returncode == 0, whole.stderr[-3000:]
    curve = torch.load(tmp_path / "whole" / "model.pt", weights_only=False)["losses"]

    idle = {**os.environ, **idle_rule_environment(5, 0.002), FAKE_UTILISATION_ENV: "0", SAMPLE_SECONDS_ENV: "0.02"}
    stopped = torchrun(2, trainer_command(sequences, vocabulary, str(tmp_path / "stopped"), *common), env=idle)
    assert stopped.returncode != 0 and "GPUs idle" in stopped.stderr, stopped.stderr[-3000:]
    progress = torch.load(tmp_path / "stopped" / "sharded-checkpoint" / "progress.pt", weights_only=False)
    epochs_done = len(progress["progress"]["losses"])
    assert progress["world_size"] == 2 and progress["progress"]["step"] > 0 and epochs_done < 6
    (folder,) = (tmp_path / "stopped" / "sharded-checkpoint").glob("step-*")
    assert len(list(folder.glob("*.distcp"))) == 2

    for processes in (1, 4):
        out = tmp_path / f"at{processes}"
        shutil.copytree(tmp_path / "stopped", out)
        command = trainer_command(sequences, vocabulary, str(out), *common)
        resumed = (
            torchrun(processes, command) if processes > 1 else subprocess.run(command, capture_output=True, text=True)
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"at step {progress['progress']['step']} of" in resumed.stderr
        assert f"written by 2 processes, resumed by {processes}" in resumed.stderr
        losses = torch.load(out / "model.pt", weights_only=False)["losses"]
        # The epochs before the stop are the ones the two ranks trained; those after continue their curve.
        assert losses[:epochs_done] == progress["progress"]["losses"]
        assert losses == pytest.approx(curve, rel=0.05)


def test_the_projects_compute_strategy_is_the_trainers_and_the_model_section_cannot_set_it():
    from algo_platform.assets.model import launchpad_config, trainer_args
    from algo_platform.core.project import Project

    base = {"name": "demo", "owners": ["a@example.com"], "partitions_start": "2024-01-01"}
    project = Project.model_validate({**base, "compute": {"strategy": "fsdp", "activation_checkpointing": True}})
    args = trainer_args(launchpad_config(project.hyperparameters())())
    assert args[args.index("--strategy") + 1] == "fsdp" and "--activation-checkpointing" in args
    with pytest.raises(ValueError, match="unknown hyper-parameter strategy"):
        Project.model_validate({**base, "model": {"strategy": "fsdp"}})
