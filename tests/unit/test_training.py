import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from algo_platform.core.hyperparameters import TrainConfig
from algo_platform.models import FAMILIES, FittedNextItemModel, ModelConfig, SASRec, build_model
from algo_platform.training.artifacts import load_model
from algo_platform.training.data import (
    RaggedSequences,
    SequenceData,
    holdout_windows,
    read_sequences,
    training_windows,
)
from algo_platform.training.metrics import hit_rate_and_ndcg, target_ranks
from algo_platform.training.runtime import Reporter
from algo_platform.training.train import train
from tests.support.factories import write_inputs

# Families fitted once in closed form (no loss curve, no optimizer) and those trained by gradient steps.
FITTED = {name for name, family in FAMILIES.items() if issubclass(family, FittedNextItemModel)}
GRADIENT = sorted(set(FAMILIES) - FITTED)


def ragged(*sequences: list[int]) -> RaggedSequences:
    return RaggedSequences.from_arrow(pa.array([list(s) for s in sequences], pa.list_(pa.int32())))


def test_model_forward_backward_shapes_and_no_nan_on_left_padding():
    model = SASRec(ModelConfig(num_items=30, max_len=6, hidden_dim=16, num_layers=2, num_heads=2))
    items = torch.tensor([[0, 0, 0, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    hidden = model(items)
    scores = model.item_scores(hidden)
    assert hidden.shape == (2, 6, 16) and scores.shape == (2, 6, 30)
    assert torch.isfinite(scores).all()
    loss = torch.nn.functional.cross_entropy(scores[:, :-1].reshape(-1, 30), items[:, 1:].reshape(-1), ignore_index=0)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.item_embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", GRADIENT)
def test_loss_over_a_catalogue_too_large_to_score_at_once_is_the_same_loss(family, monkeypatch):
    """A large catalogue is scored a chunk of positions at a time: same loss, same gradients."""
    from algo_platform.models import base

    config = ModelConfig(
        num_items=500, max_len=12, hidden_dim=16, num_layers=1, num_heads=2, dropout=0.0, family=family
    )
    items, targets = torch.randint(0, 500, (8, 12), generator=torch.Generator().manual_seed(1)).chunk(2)
    model = build_model(config)
    whole = model(items, targets)
    whole.backward()
    whole_grad = model.item_embedding.weight.grad.clone()
    model.zero_grad()
    monkeypatch.setattr(base, "LOSS_CHUNK_SCORES", 500 * 5)  # 5 positions per chunk
    chunked = model(items, targets)
    chunked.backward()
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert torch.allclose(whole_grad, model.item_embedding.weight.grad, atol=1e-6)


def test_causal_model_does_not_see_the_future():
    model = SASRec(ModelConfig(num_items=20, max_len=5, hidden_dim=8, num_layers=1, num_heads=1, dropout=0.0)).eval()
    first = model(torch.tensor([[1, 2, 3, 4, 5]]))
    changed_future = model(torch.tensor([[1, 2, 3, 9, 9]]))
    assert torch.allclose(first[0, :3], changed_future[0, :3], atol=1e-6)


def test_ranks_hit_rate_and_ndcg_against_hand_computed_values():
    scores = torch.tensor([[0.0, 0.9, 0.5, 0.1], [0.0, 0.2, 0.3, 0.8], [0.0, 0.1, 0.1, 0.1]])
    ranks = target_ranks(scores, torch.tensor([1, 2, 3]))
    assert ranks.tolist() == [0, 1, 2]  # ties count against the target
    assert target_ranks(scores[:1], torch.tensor([0])).tolist() == [4]  # unknown item: always a miss
    padding_scored_highest = torch.tensor([[5.0, 0.1, 0.2, 0.3]])
    assert target_ranks(padding_scored_highest, torch.tensor([3])).tolist() == [0]  # padding is never a candidate
    hr, ndcg = hit_rate_and_ndcg(ranks, k=2)
    assert hr == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((1.0 + 1 / np.log2(3)) / 3)


def test_training_windows_cover_every_transition_once():
    windows = training_windows(ragged([1, 2, 3, 4, 5, 6], [7], [8, 9]), max_len=3)
    assert windows.tolist() == [[3, 4, 5, 6], [0, 1, 2, 3], [0, 0, 8, 9]]
    inputs, targets = windows[:, :-1], windows[:, 1:]
    assert ((inputs > 0) & (targets > 0)).sum() == 5 + 1  # user 1 has 5 transitions, user 3 one, user 2 none


def test_holdout_windows_score_only_held_out_items_with_context():
    data = SequenceData(
        user_ids=np.array([10, 11, 12]),
        history=ragged([1, 2, 3], [4], []),
        holdout=ragged([5, 6], [], [7, 8]),
    )
    batch = holdout_windows(data, max_len=4)
    assert batch.user_rows.tolist() == [0, 2]
    assert batch.inputs.tolist() == [[1, 2, 3, 5], [0, 0, 0, 7]]
    assert batch.targets.tolist() == [[-1, -1, 5, 6], [-1, -1, -1, 8]]


def small_config(**overrides) -> TrainConfig:
    """A model small enough to learn `write_inputs`' pattern in seconds on a CPU."""
    shape = {"batch_size": 16, "max_len": 8, "hidden_dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0}
    return TrainConfig(**{**shape, "device": "cpu", **overrides})


def test_trainer_learns_a_sequential_pattern_and_writes_checkpoints(tmp_path):
    sequences, vocabulary = write_inputs(tmp_path)
    result = train(small_config(epochs=15, patience=0), sequences, vocabulary, str(tmp_path / "out"), Reporter(None))
    assert (tmp_path / "out" / "model.pt").exists() and (tmp_path / "out" / "checkpoint.pt").exists()
    assert len(result["losses"]) == 15 and result["losses"][-1] < result["losses"][0] / 2
    assert result["holdout_hr@10"] > 0.95
    assert result["holdout_popularity_hr@10"] < 0.95  # 12 items, uniform: popularity is ~10/12 at best
    model = load_model(result["model_uri"], torch.device("cpu"))
    assert model.config.num_items == 13


def test_trainer_resumes_from_the_last_checkpoint(tmp_path):
    sequences, vocabulary = write_inputs(tmp_path)
    out = str(tmp_path / "out")
    short = TrainConfig(epochs=2, batch_size=16, max_len=8, hidden_dim=16, num_layers=1, device="cpu", patience=0)
    first = train(short, sequences, vocabulary, out, Reporter(None))
    longer = TrainConfig(**{**short.__dict__, "epochs": 4})
    resumed = train(longer, sequences, vocabulary, out, Reporter(None))
    assert resumed["losses"][:2] == first["losses"] and len(resumed["losses"]) == 4


def test_trainer_cli_runs_without_dagster_and_explains_bad_input(tmp_path):
    sequences, vocabulary = write_inputs(tmp_path)
    command = trainer_command(sequences, vocabulary, str(tmp_path / "cli"), "--epochs", "1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "epoch 1/1 loss" in done.stderr and (tmp_path / "cli" / "model.pt").exists()

    empty = tmp_path / "empty.parquet"
    pd.DataFrame({"user_id": [1], "history": [[3]], "holdout": [[4]]}).to_parquet(empty)
    failed = subprocess.run([*command[:4], str(empty), *command[5:]], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "nothing to train on" in failed.stderr


def trainer_command(sequences: str, vocabulary: str, output: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "algo_platform.training",
        "--sequences",
        sequences,
        "--vocabulary",
        vocabulary,
        "--output-dir",
        output,
        "--device",
        "cpu",
        "--dropout",
        "0",
        "--batch-size",
        "8",
        "--max-len",
        "8",
        "--hidden-dim",
        "16",
        "--num-layers",
        "1",
        *extra,
    ]


def test_a_killed_trainer_resumes_from_its_last_checkpoint(tmp_path):
    import signal
    import time

    sequences, vocabulary = write_inputs(tmp_path, users=120)
    args = ("--epochs", "16", "--checkpoint-every", "5", "--patience", "0")
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    first = subprocess.Popen(
        trainer_command(sequences, vocabulary, str(killed_dir), *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (killed_dir / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let it get some way past the first checkpoint
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    step_at_kill = torch.load(killed_dir / "checkpoint.pt", weights_only=False)["progress"]["step"]
    assert step_at_kill > 0 and not (killed_dir / "model.pt").exists()

    resumed = subprocess.run(
        trainer_command(sequences, vocabulary, str(killed_dir), *args), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {step_at_kill} of" in resumed.stderr  # continued, not restarted
    uninterrupted = subprocess.run(
        trainer_command(sequences, vocabulary, str(clean_dir), *args), capture_output=True, text=True, timeout=300
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    resumed_model = torch.load(killed_dir / "model.pt", weights_only=False)
    clean_model = torch.load(clean_dir / "model.pt", weights_only=False)
    assert len(resumed_model["losses"]) == 16
    assert resumed_model["losses"][-1] == pytest.approx(clean_model["losses"][-1], rel=1e-4)


def test_torchrun_trains_data_parallel(tmp_path):
    sequences, vocabulary = write_inputs(tmp_path, users=120)
    command = trainer_command(sequences, vocabulary, str(tmp_path / "ddp"), "--epochs", "3")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *command[1:]]
    done = subprocess.run(torchrun, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x2:" in done.stderr  # both ranks joined one job
    saved = torch.load(tmp_path / "ddp" / "model.pt", weights_only=False)
    assert len(saved["losses"]) == 3 and saved["losses"][-1] < saved["losses"][0]


def test_the_idle_rule_fires_after_a_whole_idle_stretch_and_a_busy_sample_resets_it():
    from algo_platform.training.idle import IdleRule

    rule = IdleRule(percent=5, seconds=30 * 60)
    feed = [(0, 60.0), (60, 3.0), (60 + 29 * 60, 4.0)]  # (seconds, NVML utilisation %)
    for at, value in feed:
        rule.observe(value, at)
    assert not rule.fired(60 + 29 * 60)
    assert rule.fired(60 + 30 * 60) and "under 5% for 30.0 minutes" in rule.reason(60 + 30 * 60, 7)
    rule.observe(40.0, 60 + 31 * 60)  # the GPUs work again
    assert not rule.fired(60 + 90 * 60)


def test_an_idle_trainer_stops_after_a_checkpoint_and_its_retry_resumes(tmp_path):
    """A fake NVML feed at 0%: the trainer stops with the reason and a checkpoint, the retry (GPUs busy) resumes."""
    import os

    from algo_platform.training.idle import (
        FAKE_UTILISATION_ENV,
        IDLE_EXIT_CODE,
        SAMPLE_SECONDS_ENV,
        idle_rule_environment,
    )

    sequences, vocabulary = write_inputs(tmp_path, users=120)
    out = tmp_path / "out"
    command = trainer_command(sequences, vocabulary, str(out), "--epochs", "30", "--patience", "0")
    idle = {**os.environ, **idle_rule_environment(5, 0.005), FAKE_UTILISATION_ENV: "0", SAMPLE_SECONDS_ENV: "0.05"}
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=300, env=idle)
    assert stopped.returncode == IDLE_EXIT_CODE, stopped.stderr[-2000:]
    assert "GPUs idle: utilisation under 5% for" in stopped.stderr
    step = torch.load(out / "checkpoint.pt", weights_only=False)["progress"]["step"]
    assert step > 0 and not (out / "model.pt").exists()
    busy = {**os.environ, **idle_rule_environment(5, 0.005), FAKE_UTILISATION_ENV: "80", SAMPLE_SECONDS_ENV: "0.05"}
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=busy)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {step} of" in resumed.stderr and (out / "model.pt").exists()


def test_two_nodes_train_what_one_process_trains(tmp_path):
    """Two processes on this machine stand in for two nodes (torchrun --nnodes 2, c10d rendezvous on
    loopback, gloo): with dropout 0 and the same batch size (split 8 + 8 across the nodes), the model
    equals one process's."""
    import socket

    sequences, vocabulary = write_inputs(tmp_path, users=128)
    common = ("--epochs", "3", "--patience", "0", "--seed", "0", "--batch-size", "16")
    one = trainer_command(sequences, vocabulary, str(tmp_path / "one"), *common)
    done = subprocess.run(one, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = trainer_command(sequences, vocabulary, str(tmp_path / "nodes"), *common)
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node_rank={rank}",
                "--nproc_per_node=1",
                "--rdzv_backend=c10d",
                f"--rdzv_endpoint=127.0.0.1:{port}",
                "--rdzv_id=two-nodes",
                *node[1:],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    for process in nodes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    single = torch.load(tmp_path / "one" / "model.pt", weights_only=False)
    joint = torch.load(tmp_path / "nodes" / "model.pt", weights_only=False)
    assert joint["losses"] == pytest.approx(single["losses"], rel=1e-5)
    for name, weights in single["model_state"].items():
        torch.testing.assert_close(joint["model_state"][name], weights, rtol=1e-4, atol=1e-4)


# A stand-in for the run worker: starts the trainer as SubprocessTrainingLauncher does (with its
# own pid in the environment), prints the trainer's pid, then waits to be killed.
LAUNCHER_SCRIPT = """
import os, subprocess, sys, time
from algo_platform.training.watchdog import LAUNCHER_PID_ENV
trainer = subprocess.Popen(sys.argv[1:], env={**os.environ, LAUNCHER_PID_ENV: str(os.getpid())},
                           stdout=subprocess.DEVNULL, stderr=open(os.environ["TRAINER_LOG"], "w"))
print(trainer.pid, flush=True)
time.sleep(600)
"""


def test_a_trainer_whose_launcher_is_killed_stops_and_keeps_its_checkpoint(tmp_path):
    import os
    import signal
    import time

    sequences, vocabulary = write_inputs(tmp_path, users=200)
    out = tmp_path / "out"
    command = trainer_command(
        sequences, vocabulary, str(out), "--epochs", "400", "--checkpoint-every", "5", "--patience", "0"
    )
    log = tmp_path / "trainer.log"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER_SCRIPT, *command],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TRAINER_LOG": str(log)},
    )
    trainer_pid = int(launcher.stdout.readline())
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher.send_signal(signal.SIGKILL)  # the run worker dies without a chance to clean up
    launcher.wait()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(trainer_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(trainer_pid, signal.SIGKILL)
        pytest.fail("the trainer kept running after its launcher was killed")
    assert "is gone: stopping the trainer" in log.read_text()
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()


def test_the_pod_trainer_stops_when_the_launchers_heartbeat_is_stale(tmp_path):
    from algo_platform.training.watchdog import HEARTBEAT_FILE_ENV, HEARTBEAT_TIMEOUT_ENV, launcher_gone

    annotations = tmp_path / "annotations"
    env = {HEARTBEAT_FILE_ENV: str(annotations), HEARTBEAT_TIMEOUT_ENV: "300"}
    assert launcher_gone(env, parent_pid=1, now=10_000) is None  # no file yet: the kubelet is behind
    annotations.write_text('kubernetes.io/psp="x"\nalgo-platform/launcher-heartbeat="9800"\n')
    assert launcher_gone(env, parent_pid=1, now=10_000) is None
    assert "no heartbeat from the launcher for 400s" in launcher_gone(env, parent_pid=1, now=10_200)


class Payload:
    """Stands for any object a checkpoint could smuggle in: unpickling it would run code."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    from algo_platform.training.artifacts import UnsafeCheckpoint, load_checkpoint

    sequences, vocabulary = write_inputs(tmp_path)
    config = TrainConfig(epochs=1, batch_size=16, max_len=8, hidden_dim=16, num_layers=1, device="cpu")
    result = train(config, sequences, vocabulary, str(tmp_path / "out"), Reporter(None))
    assert load_checkpoint(result["model_uri"], torch.device("cpu"))["item_ids"].tolist()[1:3] == [100, 200]

    state = torch.load(result["model_uri"], weights_only=True)
    torch.save({**state, "extra": Payload()}, tmp_path / "tampered.pt")
    with pytest.raises(UnsafeCheckpoint, match="refused"):
        load_checkpoint(str(tmp_path / "tampered.pt"), torch.device("cpu"))


def test_every_hyper_parameter_is_in_the_launchpad_with_its_help_and_on_the_command_line():
    from dataclasses import fields

    import pydantic

    from algo_platform.assets.model import launchpad_config, trainer_args
    from algo_platform.training.cli import build_parser

    launchpad_class = launchpad_config()
    launchpad = launchpad_class.model_fields
    # Every hyper-parameter but the family and its own settings, which pick the code the trainer imports and
    # what it is handed: project.yaml's alone.
    assert set(launchpad) == {f.name for f in fields(TrainConfig)} - {"model", "family_settings"}
    assert all(launchpad[name].description for name in launchpad)
    config = launchpad_class(grad_clip=0.5, compile=True, warmup_fraction=0.1, eval_k=20)
    parsed = build_parser().parse_args(
        ["--sequences", "s", "--vocabulary", "v", "--output-dir", "o", *trainer_args(config)]
    )
    assert {name: getattr(parsed, name) for name in launchpad} == config.model_dump()
    with pytest.raises(pydantic.ValidationError, match="epochs"):  # the bounds a launch is held to, run or not
        launchpad_class(epochs=100_000)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_model_family_trains_saves_loads_and_scores_through_the_interface(tmp_path, family):
    from algo_platform.evaluation.scoring import recommend

    sequences, vocabulary = write_inputs(tmp_path)
    config = small_config(model=family, epochs=15)
    result = train(config, sequences, vocabulary, str(tmp_path / "out"), Reporter(None))
    if family in FITTED:  # fitted once in closed form: no epochs, no loss curve
        assert result["epochs"] == 0 and result["losses"] == []
    else:
        assert result["losses"][-1] < result["losses"][0] / 2
    assert result["holdout_hr@10"] > result["holdout_popularity_hr@10"]
    model = load_model(result["model_uri"], torch.device("cpu"))
    assert type(model).family == family and model.config.num_items == 13
    # Users who have seen 8 of the 12 items: three distinct items each, none of those 8.
    short = tmp_path / "short"
    short.mkdir()
    short_sequences, short_vocabulary = write_inputs(short, length=8)
    top = recommend(result["model_uri"], short_sequences, short_vocabulary, k=3)
    seen = pd.read_parquet(short_sequences).apply(lambda row: {*row["history"], *row["holdout"]}, axis=1)
    assert len(top) == 60 and all(len(set(items)) == 3 for items in top["item_ids"])
    assert all(not {i // 100 for i in items} & had for items, had in zip(top["item_ids"], seen, strict=True))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_no_family_sees_the_future(family):
    config = ModelConfig(num_items=20, max_len=5, hidden_dim=8, num_layers=1, num_heads=1, dropout=0.0, family=family)
    model = build_model(config).eval()
    first = model(torch.tensor([[1, 2, 3, 4, 5]]))
    changed_future = model(torch.tensor([[1, 2, 3, 9, 9]]))
    assert torch.allclose(first[0, :3], changed_future[0, :3], atol=1e-6)


def test_an_unknown_model_family_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"not built in \(sasrec, gru4rec, hstu, itemknn, ease\)"):
        build_model(ModelConfig(num_items=5, family="transformer-xl"))


@pytest.mark.parametrize("family", GRADIENT)
def test_weight_decay_falls_on_weight_matrices_only(family):
    from algo_platform.training.optimizer import parameter_groups

    model = build_model(ModelConfig(num_items=30, max_len=6, hidden_dim=16, num_layers=2, num_heads=2, family=family))
    decayed, plain = parameter_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"])
    assert any(p is model.item_embedding.weight for p in plain["params"])  # embeddings are not decayed
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_early_stopping_keeps_the_best_epochs_weights_and_resumes_stopped(tmp_path):
    sequences, vocabulary = write_inputs(tmp_path)
    out = str(tmp_path / "out")
    config = small_config(epochs=30, patience=2)
    result = train(config, sequences, vocabulary, out, Reporter(None))
    validation = result["validation_ndcg_per_epoch"]
    # A pattern this simple is learnt in a few epochs: training stops two epochs after the best one.
    assert result["epochs"] == len(validation) == result["best_epoch"] + 2 < 30
    assert max(validation) == validation[result["best_epoch"] - 1] > 0.9
    assert result["holdout_hr@10"] > 0.95  # the kept weights are the best epoch's, not worse
    again = train(config, sequences, vocabulary, out, Reporter(None))  # a retry of a finished run
    assert again["epochs"] == result["epochs"]  # it does not train past the stop


def test_validation_holds_out_each_users_last_training_item():
    from algo_platform.training.data import validation_split

    history = ragged([1, 2, 3, 4], [5, 6], [7, 8, 9])
    train_history, validation = validation_split(history)
    assert train_history.lengths.tolist() == [3, 2, 2]  # users with 3+ items lose their last one
    assert validation.holdout.values.tolist() == [4, 9]
    assert train_history.values.tolist() == [1, 2, 3, 5, 6, 7, 8]


def test_checkpoints_are_keyed_by_what_they_train_so_a_new_runs_retry_finds_them(tmp_path):
    """The run retry after a killed worker is a new run: it must find the same checkpoint folder."""
    from upath import UPath

    from algo_platform.assets.model import training_key

    sequences, vocabulary = (UPath(p) for p in write_inputs(tmp_path))
    key = training_key({"model": "sasrec", "epochs": 3}, sequences, vocabulary)
    assert training_key({"model": "sasrec", "epochs": 3}, sequences, vocabulary) == key  # same training, same folder
    assert training_key({"model": "sasrec", "epochs": 4}, sequences, vocabulary) != key  # other hyper-parameters
    assert training_key({"model": "gru4rec", "epochs": 3}, sequences, vocabulary) != key  # another family
    pd.DataFrame({"item_index": [1], "item_id": [7]}).to_parquet(str(vocabulary))  # the input rewritten
    assert training_key({"model": "sasrec", "epochs": 3}, sequences, vocabulary) != key


def test_sampled_softmax_learns_the_pattern_and_the_catalogue_size_chooses_it(tmp_path):
    """Scored against the batch's targets and 64 uniform negatives (logQ-corrected) instead of all 600
    items, SASRec still learns the walk; evaluation ranks the whole catalogue."""
    from algo_platform.training.model_config import AUTO_NEGATIVES, SAMPLED_SOFTMAX_ABOVE, model_config_of

    sequences, vocabulary = write_inputs(tmp_path, users=400, items=600)
    config = small_config(epochs=12, patience=0, negatives=64, learning_rate=5e-3)
    result = train(config, sequences, vocabulary, str(tmp_path / "out"), Reporter(None))
    assert result["losses"][-1] < result["losses"][0] / 2
    assert result["holdout_hr@10"] > 5 * result["holdout_popularity_hr@10"]
    assert load_model(result["model_uri"], torch.device("cpu")).config.negatives == 64
    assert model_config_of(TrainConfig(), SAMPLED_SOFTMAX_ABOVE + 2).negatives == AUTO_NEGATIVES
    assert model_config_of(TrainConfig(), SAMPLED_SOFTMAX_ABOVE).negatives == 0


def test_the_sampled_loss_estimates_the_full_softmax_and_its_correction_is_what_makes_it():
    """With many draws the logQ-corrected sampled loss is close to the full softmax's (the candidates'
    corrected sum estimates the normaliser); the same candidates without the correction are not."""
    from algo_platform.models.base import sampled_next_item_loss

    torch.manual_seed(0)
    model = build_model(ModelConfig(num_items=50, hidden_dim=8, max_len=4, num_layers=1)).eval()
    hidden = torch.randn(64, 8) * 3
    targets = torch.randint(1, 5, (64,))  # a skewed batch: four popular items
    full = torch.nn.functional.cross_entropy(model.item_scores(hidden), targets).item()
    sampled = np.mean([sampled_next_item_loss(model, hidden, targets, 2000).item() for _ in range(20)])
    uncorrected = torch.nn.functional.cross_entropy(
        hidden @ model.item_embedding.weight[1:5].T, targets - 1
    ).item()  # the batch's items alone, as an in-batch softmax without the correction would score
    assert sampled == pytest.approx(full, rel=0.05)
    assert abs(uncorrected - full) > 5 * abs(sampled - full)


def test_a_catalogue_too_large_for_one_batch_is_ranked_a_few_rows_at_a_time_with_the_same_result(monkeypatch):
    import algo_platform.training.metrics as metrics
    from algo_platform.training.metrics import evaluate

    torch.manual_seed(0)
    model = build_model(ModelConfig(num_items=13, hidden_dim=8, max_len=8, num_layers=1))
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(1, 13, (40, 8)), rng.integers(1, 13, (40, 8))
    targets[:, :5] = -1
    whole = evaluate(model, inputs, targets, torch.device("cpu"), 10)
    monkeypatch.setattr(metrics, "SCORES_AT_ONCE", 13 * 3)  # one row (three targets) at a time
    assert metrics.rows_per_batch(512, 13, 3) == 1
    assert evaluate(model, inputs, targets, torch.device("cpu"), 10) == whole


def test_fitted_families_weigh_recent_items_more_and_the_trainer_picks_the_decay_on_validation(tmp_path, caplog):
    import logging

    model = build_model(ModelConfig(num_items=6, family="itemknn", recency_decay=0.5))
    state = model(torch.tensor([[0, 3, 1, 3, 2]]))[0, -1]
    # Item 2 just now, 3 one step back (its later visit counts), 1 two steps back; never seen: 0.
    assert state.tolist() == [0.0, 0.25, 1.0, 0.5, 0.0, 0.0]
    # Users walk the catalogue in order: the last item tells the next, so a strong decay wins.
    sequences, vocabulary = write_inputs(tmp_path, users=80, items=30, length=25)
    with caplog.at_level(logging.INFO, logger="algo_platform.training"):
        result = train(
            TrainConfig(model="itemknn", device="cpu"), sequences, vocabulary, str(tmp_path / "o"), Reporter(None)
        )
    chosen = next(
        r.getMessage() for r in caplog.records if "chosen on each user's last training item" in r.getMessage()
    )
    assert chosen.startswith(("recency decay 0.5 ", "recency decay 0.3 ")), chosen
    # Every history item alike (1.0) ranks the next one far worse on this walk; the chosen decay nails it.
    assert result["holdout_ndcg@10"] > 0.9 > 0.2 > result["holdout_popularity_ndcg@10"]


def test_a_trained_family_blended_with_item_knn_takes_the_share_validation_chooses_and_loads_back(tmp_path, caplog):
    import logging

    from algo_platform.models import BlendedNextItemModel
    from algo_platform.training.metrics import evaluate

    sequences, vocabulary = write_inputs(tmp_path, users=80, items=30, length=25)
    # One epoch at a negligible learning rate: HSTU stays near its random start, so on this walk the
    # neighbours must carry the blend, and validation has to see it.
    barely_trained = {"model": "hstu", "epochs": 1, "patience": 1, "learning_rate": 1e-6}
    alone = train(small_config(**barely_trained), sequences, vocabulary, str(tmp_path / "alone"), Reporter(None))
    with caplog.at_level(logging.INFO, logger="algo_platform.training"):
        blend = train(small_config(**barely_trained, blend_with="itemknn"), sequences, vocabulary,
                      str(tmp_path / "blend"), Reporter(None))  # fmt: skip
    assert "blended with itemknn: hstu's share" in caplog.text
    assert blend["blended_with"] == "itemknn" and blend["blend_weight"] <= 0.5
    assert blend["holdout_ndcg@10"] > 0.8 > 0.3 > alone["holdout_ndcg@10"]
    # The model file is the blend: both parts, the share and the decay, scoring as it did in training.
    loaded = load_model(blend["model_uri"], torch.device("cpu"))
    assert isinstance(loaded, BlendedNextItemModel) and loaded.config.blend_weight == blend["blend_weight"]
    batch = holdout_windows(read_sequences(sequences), loaded.config.max_len)
    again = evaluate(loaded, batch.inputs, batch.targets, torch.device("cpu"), 10)["ndcg@10"]
    assert again == pytest.approx(blend["holdout_ndcg@10"])


def test_blending_a_fitted_family_is_refused_with_the_rule(tmp_path):
    from algo_platform.training.runtime import ContractRefused

    sequences, vocabulary = write_inputs(tmp_path)
    with pytest.raises(ContractRefused, match="blends a trained family with a fitted one; itemknn is fitted itself"):
        train(small_config(model="itemknn", blend_with="ease"), sequences, vocabulary, str(tmp_path), Reporter(None))


def test_recommendations_leave_out_every_item_of_a_history_longer_than_the_models_window(tmp_path):
    from algo_platform.evaluation.scoring import recommend

    # Histories of 22 of 30 items, a window of 4: most of what a user saw is outside what the model sees.
    sequences, vocabulary = write_inputs(tmp_path, users=40, items=30, length=25)
    config = TrainConfig(model="itemknn", max_len=4, device="cpu")
    result = train(config, sequences, vocabulary, str(tmp_path / "knn"), Reporter(None))
    lists = recommend(result["model_uri"], sequences, vocabulary, k=20)
    table = pd.read_parquet(sequences)
    item_id = pd.read_parquet(vocabulary).set_index("item_index")["item_id"]
    for user, listed in zip(lists["user_id"], lists["item_ids"], strict=True):
        row = table[table["user_id"] == user].iloc[0]
        seen = set(item_id[list(row["history"]) + list(row["holdout"])])
        assert len(listed) == 30 - len(seen) and not seen & set(listed), user
