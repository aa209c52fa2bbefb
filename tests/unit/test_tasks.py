"""The task contract: each rule a team's model or program can break gets its message; the
engagement task's features never see the day they predict; `exclude_seen` on a hand-made history."""

import datetime as dt
import textwrap

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from algo_platform.core.project import ProjectError, load_project, parse_project
from algo_platform.models import (
    ContractViolation,
    EngagementConfig,
    ModelConfig,
    build_engagement_model,
    build_model,
    check_next_item_contract,
    model_state,
)
from algo_platform.tasks.contract import check_outputs
from algo_platform.tasks.engagement.examples import build_examples
from algo_platform.tasks.engagement.features import FEATURES
from algo_platform.tasks.engagement.train import Split, validate
from algo_platform.training.data import RaggedSequences, SequenceData, holdout_windows, seen_before_targets

TEAM_MODELS = '''
import torch
import torch.nn as nn
from algo_platform.models import EngagementModel, NextItemModel


class TwoScores(EngagementModel):
    """Breaks the rule: two numbers per example instead of one logit."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.num_features, 2)

    def forward(self, features):
        return self.linear(features)


class HalfCatalogue(NextItemModel):
    """Breaks the rule: scores only half of the items."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.num_items, 8)

    def forward(self, items, targets=None):
        return self.embedding(items)

    def item_scores(self, hidden):
        return hidden @ self.embedding.weight[: self.config.num_items // 2].T


class NotAModel:
    pass
'''


@pytest.fixture
def team_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(TEAM_MODELS)
    return path


def test_a_team_engagement_model_with_the_wrong_output_shape_is_refused(team_file):
    model = build_engagement_model(EngagementConfig(len(FEATURES), family=f"{team_file}:TwoScores"))
    data = Split(torch.zeros(6, len(FEATURES)), torch.tensor([0.0, 1, 0, 1, 0, 1]))
    with pytest.raises(ContractViolation, match=r"rule 'one logit per example'.*TwoScores.*\(6, 2\), expected \(6,\)"):
        validate(model, data)


def test_a_team_next_item_model_that_scores_part_of_the_catalogue_is_refused(team_file):
    model = build_model(ModelConfig(num_items=20, max_len=8, family=f"{team_file}:HalfCatalogue"))
    with pytest.raises(ContractViolation, match=r"rule 'scores every item'.*\(4, 10\), expected .* \(4, 20\)"):
        check_next_item_contract(model, torch.device("cpu"))


def test_the_platforms_families_keep_the_contract():
    for family in ("sasrec", "gru4rec"):
        check_next_item_contract(build_model(ModelConfig(num_items=30, max_len=8, family=family)), torch.device("cpu"))


def test_a_class_that_is_not_a_model_of_the_task_type_is_refused(team_file):
    with pytest.raises(ContractViolation, match="rule 'implements the interface'.*NotAModel.*EngagementModel"):
        build_engagement_model(EngagementConfig(3, family=f"{team_file}:NotAModel"))
    with pytest.raises(ContractViolation, match="rule 'family resolves'.*defines no 'Missing'"):
        build_engagement_model(EngagementConfig(3, family=f"{team_file}:Missing"))


def test_an_engagement_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    from algo_platform.tasks.engagement.scorer import load_scorer
    from algo_platform.training.artifacts import UnsafeCheckpoint

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    model = build_engagement_model(EngagementConfig(len(FEATURES)))
    torch.save({**model_state(model), "feature_names": list(FEATURES), "extra": Payload()}, tmp_path / "model.pt")
    with pytest.raises(UnsafeCheckpoint, match="refused"):
        load_scorer(str(tmp_path / "model.pt"))


@pytest.mark.parametrize(
    ("reported", "rule"),
    [
        ({"model_format": "mlflow", "metrics_per_epoch": [], "validation_auc": 0.7}, "reports its outputs.*model_uri"),
        ({"model_uri": "m", "model_format": "pickle", "metrics_per_epoch": []}, "declared model format.*pickle"),
        ({"model_uri": "m", "model_format": "mlflow", "metrics_per_epoch": []}, "reports its validation metric"),
        (
            {"model_uri": "m", "model_format": "mlflow", "metrics_per_epoch": 3, "validation_auc": 0.7},
            "metrics per epoch",
        ),
    ],
)
def test_a_task_that_reports_less_than_the_contract_is_refused_naming_the_rule(reported, rule):
    with pytest.raises(ContractViolation, match=rule):
        check_outputs(reported, "auc")


def test_a_task_reporting_everything_passes_and_pipes_wrappers_are_read():
    outputs = check_outputs(
        {
            "model_uri": {"raw_value": "/m", "type": "path"},
            "model_format": "torch-state",
            "metrics_per_epoch": {"raw_value": [{"loss": 0.5}], "type": "json"},
            "validation_auc": 0.71,
        },
        "auc",
    )
    assert (outputs.model_uri, outputs.validation_value, outputs.metrics_per_epoch) == ("/m", 0.71, [{"loss": 0.5}])


def events(rows: list[tuple[int, int, str, int]]) -> pl.DataFrame:
    """(user, item, event type, day of December 2024) -> cleaned-events-shaped rows."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "ts": [dt.datetime(2024, 12, r[3], 10, tzinfo=dt.UTC) for r in rows],
            "watch_ms": [5_000] * len(rows),
            "item_duration_ms": [10_000] * len(rows),
        }
    )


def test_features_of_an_impression_see_only_the_days_before_it():
    history = [(1, 10, "play", 1), (1, 11, "like", 2), (2, 10, "like", 2), (1, 12, "play", 3)]
    first = build_examples(events([*history, (1, 10, "play", 4)]), dt.date(2024, 12, 4), ["like"])
    second = build_examples(events([*history, (1, 10, "like", 4)]), dt.date(2024, 12, 4), ["like"])
    held_out = [frame.filter(pl.col("split") == "holdout") for frame in (first, second)]
    # The label of the held-out impression changed; its features did not.
    assert held_out[0]["label"].to_list() == [0] and held_out[1]["label"].to_list() == [1]
    assert held_out[0].select(FEATURES).equals(held_out[1].select(FEATURES))
    # Before day 4, user 1 had 3 impressions (one liked); item 10 had 2 (one liked).
    row = held_out[0].row(0, named=True)
    assert row["user_log_impressions"] == pytest.approx(np.log1p(3))
    assert row["item_log_impressions"] == pytest.approx(np.log1p(2))
    assert set(first["split"]) == {"train", "validation", "holdout"} and first["day"].min() == dt.date(2024, 12, 2)


def test_a_missing_optional_column_gives_zero_features_not_an_error():
    frame = events([(1, 10, "play", 1), (1, 11, "like", 2), (1, 12, "play", 3)]).drop("watch_ms")
    examples = build_examples(frame, dt.date(2024, 12, 3), ["like"])
    assert examples["user_watch_ratio"].to_list() == [0.0, 0.0]


def sequences(histories: list[list[int]], holdouts: list[list[int]]) -> SequenceData:
    import pyarrow as pa

    return SequenceData(
        np.arange(len(histories)),
        RaggedSequences.from_arrow(pa.array(histories, pa.list_(pa.int64()))),
        RaggedSequences.from_arrow(pa.array(holdouts, pa.list_(pa.int64()))),
    )


class FixedScores(torch.nn.Module):
    """Scores items by a fixed vector whatever the history: the most popular items first."""

    def __init__(self, scores: list[float]):
        super().__init__()
        self.scores = torch.tensor(scores)
        self.config = ModelConfig(num_items=len(scores), max_len=4)

    def forward(self, items):
        return torch.zeros(*items.shape, 1)

    def item_scores(self, hidden):
        return self.scores.expand(*hidden.shape[:-1], len(self.scores)).clone()


def test_exclude_seen_ranks_each_target_among_the_items_its_user_has_not_had():
    from algo_platform.evaluation.scoring import LoadedModel, model_ranks, popularity_ranks

    # Items 1-3 score highest and user 0 has had them all; its held-out item 4 comes next.
    data = sequences([[1, 2, 3], [1]], [[4], [2, 1]])
    scores = [0.0, 9.0, 8.0, 7.0, 6.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    item_ids = np.arange(len(scores))
    batch = holdout_windows(data, 4)
    seen = seen_before_targets(data, 4)
    loaded = LoadedModel(FixedScores(scores), item_ids, torch.device("cpu"))
    plain, _ = model_ranks(loaded, batch.inputs, batch.targets, item_ids)
    masked, _ = model_ranks(loaded, batch.inputs, batch.targets, item_ids, seen=seen)
    # User 1: item 2 after item 1 (seen, masked); then item 1 again, a re-watch: the target is never masked.
    assert plain.tolist() == [3, 1, 0] and masked.tolist() == [0, 0, 0]
    counts = np.array(scores)
    assert popularity_ranks(counts, batch.targets).tolist() == [3, 1, 0]
    assert popularity_ranks(counts, batch.targets, seen).tolist() == [0, 0, 0]


def test_exclude_seen_is_on_by_default_for_explicit_ratings_only():
    base = {"name": "p1", "owners": ["team:x"], "partitions_start": "2024-01-01"}
    assert not parse_project(base, "t").exclude_seen
    rated = {**base, "data": {"extra_columns": {"rating": "float64"}, "feedback": {"column": "rating"}}}
    assert parse_project(rated, "t").exclude_seen
    assert not parse_project({**rated, "training": {"exclude_seen": False}}, "t").exclude_seen


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"name": "next_item", "type": "engagement"}, "task names \\['next_item'\\] are taken"),
        ({"name": "rank", "type": "engagement", "model": {"epochz": 3}}, "unknown hyper-parameter model.epochz"),
        ({"name": "rank", "type": "engagement", "model": {"epochs": "3"}}, "model.epochs: '3' is not of type int"),
        ({"name": "rank", "type": "engagement", "model": {"family": "xgb"}}, "model family 'xgb' is not one of mlp"),
        ({"name": "rank", "type": "ranking"}, "tasks.0.type"),
        (
            {"name": "rank", "type": "engagement", "command": ["python", "x.py"], "model": {"family": "mlp"}},
            "no model.family",
        ),
    ],
)
def test_a_wrong_task_is_refused_naming_the_field(task, message):
    document = {"name": "p1", "owners": ["team:x"], "partitions_start": "2024-01-01", "tasks": [task]}
    with pytest.raises(ProjectError, match=message):
        parse_project(document, "t")


def test_a_team_family_whose_file_is_missing_names_the_field(tmp_path):
    folder = tmp_path / "p1"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        textwrap.dedent(
            """
            name: p1
            owners: [team:x]
            partitions_start: 2024-01-01
            tasks:
              - {name: rank, type: engagement, model: {family: "models.py:Ranker"}}
            """
        )
    )
    with pytest.raises(ProjectError, match=r"tasks.rank.model.family: 'models.py:Ranker', but .*models.py does not"):
        load_project(folder)
    (folder / "models.py").write_text("import torch\n\nclass Rankr: ...\n")
    # A misspelt class is caught when the project loads (`project list`), without running the file.
    with pytest.raises(ProjectError, match=r"models.py defines no 'Ranker'; did you mean 'Rankr'\?"):
        load_project(folder)
    (folder / "models.py").write_text("class Ranker: ...\n")
    assert load_project(folder).legacy_model_names(load_project(folder).tasks[0])[1] == "p1-rank-ranker"


def test_registered_model_names_are_per_task():
    document = {
        "name": "p1",
        "owners": ["team:x"],
        "partitions_start": "2024-01-01",
        "tasks": [{"name": "rank", "type": "engagement"}, {"name": "sk", "type": "engagement", "command": ["x"]}],
    }
    project = parse_project(document, "t")
    # One registered model per task, whatever each candidate's family.
    assert project.registered_model_name == "p1-next_item"
    assert [project.task_registered_model_name(t) for t in project.tasks] == ["p1-rank", "p1-sk"]
    # Where the per-family models of an older platform are found (and which one served).
    assert project.legacy_model_names() == ("p1-", "p1-sasrec")
    assert project.legacy_model_names(project.tasks[1]) == ("p1-sk-", "p1-sk-command")


def test_an_installed_packages_entry_point_is_a_family(tmp_path, monkeypatch):
    """A team's package, installed (here: a dist-info folder on sys.path), offers its class by name."""
    package = tmp_path / "team_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(TEAM_MODELS.replace("TwoScores", "Ranker"))
    info = tmp_path / "team_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[algo_platform.models]\nteam_ranker = team_pkg.models:Ranker\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    document = {"name": "p1", "owners": ["team:x"], "partitions_start": "2024-01-01"}
    task = {"name": "rank", "type": "engagement", "model": {"family": "team_ranker"}}
    project = parse_project({**document, "tasks": [task]}, "t")
    assert project.legacy_model_names(project.tasks[0])[1] == "p1-rank-team-ranker"
    model = build_engagement_model(EngagementConfig(len(FEATURES), family="team_ranker"))
    assert type(model).__name__ == "Ranker"
    with pytest.raises(ProjectError, match=r"not one of mlp.*\(team_ranker\)"):
        parse_project({**document, "tasks": [{**task, "model": {"family": "other"}}]}, "t")


def test_a_trainer_refusing_a_model_under_the_contract_exits_so_the_step_is_not_retried(team_file, tmp_path):
    """Exit status 65 (CONTRACT_EXIT_CODE), the rule on stderr: the model asset fails once on it."""
    import subprocess
    import sys

    from algo_platform.core.families import CONTRACT_EXIT_CODE
    from tests.support.factories import write_inputs

    sequences, vocabulary = write_inputs(tmp_path)
    inputs = ["--sequences", sequences, "--vocabulary", vocabulary, "--output-dir", str(tmp_path / "out")]
    command = [sys.executable, "-m", "algo_platform.training", *inputs, "--model", f"{team_file}:HalfCatalogue"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == CONTRACT_EXIT_CODE, done.stderr[-2000:]
    assert "rule 'scores every item'" in done.stderr and "Traceback" not in done.stderr


class Lists:
    """A stand-in pyfunc: `answer(history)` gives (items, scores) for each row."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def predict(self, frame):
        self.calls += 1
        rows = [self.answer(list(history), self.calls) for history in frame["item_ids"]]
        return pd.DataFrame({"item_ids": [r[0] for r in rows], "scores": [r[1] for r in rows]})


CATALOGUE = np.arange(100, 130)


def _unseen(history, call):
    items = [i for i in CATALOGUE.tolist() if i not in history][:20]
    return items, list(np.linspace(1, 0, len(items)))


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        (lambda h, c: _unseen(h, c), None),
        (lambda h, c: (CATALOGUE[:20].tolist(), list(np.linspace(1, 0, 20))), "no already-seen items"),
        (lambda h, c: (_unseen(h, c)[0][:5], _unseen(h, c)[1][:5]), "20 items per list"),
        (lambda h, c: ([999] + _unseen(h, c)[0][1:], _unseen(h, c)[1]), "items of the catalogue"),
        (lambda h, c: (_unseen(h, c)[0], list(np.linspace(0, 1, 20))), "scores finite, best first"),
        (lambda h, c: (_unseen(h, c)[0][c % 2 :][:19] + _unseen(h, c)[0][:1], _unseen(h, c)[1]), "deterministic"),
        (lambda h, c: (_unseen(h, c)[0][:19] + _unseen(h, c)[0][:1], _unseen(h, c)[1]), "each item once"),
    ],
)
def test_a_programs_recommender_is_probed_and_refused_naming_the_rule(answer, rule):
    from algo_platform.core.families import ContractViolation
    from algo_platform.evaluation.program import ProgramRecommender, probe

    users = np.arange(3)
    histories = [np.array([100, 101]), np.array([105]), np.array([], dtype=np.int64)]
    recommender = ProgramRecommender(Lists(answer))
    if rule is None:
        measured = probe(recommender, users, histories, CATALOGUE, 20, exclude_seen=True)
        assert measured["probe_users"] == 3 and measured["probe_seconds_per_1000_users"] >= 0
        return
    with pytest.raises(ContractViolation, match=rule):
        probe(recommender, users, histories, CATALOGUE, 20, exclude_seen=True)


def test_a_program_is_ranked_on_the_same_targets_as_the_platforms_models():
    from algo_platform.evaluation.program import ProgramRecommender
    from algo_platform.evaluation.scoring import program_ranks

    data = sequences([[1, 2], [3]], [[4, 5], [2]])
    item_ids = np.array([-1, 10, 20, 30, 40, 50])
    asked = []

    def answer(history, call):
        asked.append(history)
        return [50, 40, 20, 10, 30], [5.0, 4.0, 3.0, 2.0, 1.0]

    ranks, covered = program_ranks(ProgramRecommender(Lists(answer)), data, 4, item_ids)
    # Targets in holdout_windows' order: user 0's 40 after [10, 20], 50 after [10, 20, 40]; user 1's 20.
    assert asked == [[10, 20], [10, 20, 40], [30]]
    assert ranks.tolist() == [1, 0, 2]
    assert len(ranks) == int((holdout_windows(data, 4).targets >= 0).sum())
    assert covered == {10, 20, 30, 40, 50}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"command": ["python", "knn.py"], "family": "ease"}, "either a family or a command"),
        ({"command": []}, "model.command"),
        ({"family": "ease", "image": "x:1"}, "only a command runs in its own image"),
        ({"family": "ease", "neighbours": 5}, "unknown hyper-parameter neighbours"),
    ],
)
def test_a_next_item_model_section_is_checked_when_the_project_loads(model, message):
    document = {"name": "p1", "owners": ["team:x"], "partitions_start": "2024-01-01", "model": model}
    with pytest.raises(ProjectError, match=message):
        parse_project(document, "t")


def test_a_programs_settings_pass_through_as_given():
    document = {"name": "p1", "owners": ["team:x"], "partitions_start": "2024-01-01",
                "model": {"command": ["python", "knn.py"], "neighbours": 5, "image": "r/knn:1"}}  # fmt: skip
    model = parse_project(document, "t").model
    assert model.trained_by == "command" and model.settings() == {"neighbours": 5} and model.image == "r/knn:1"


def test_an_engagement_program_fitted_on_other_features_is_refused_before_registration():
    from sklearn.linear_model import LogisticRegression

    from algo_platform.core.families import ContractViolation
    from algo_platform.tasks.engagement.scorer import EngagementScorer, probe

    rng = np.random.default_rng(0)
    examples = pd.DataFrame(rng.random((50, len(FEATURES))), columns=list(FEATURES))
    four = list(FEATURES)[:4]
    fitted = LogisticRegression().fit(examples[four], rng.integers(0, 2, 50))

    class Pyfunc:  # what mlflow.pyfunc.load_model returns for it: predict on the frame it is given
        def predict(self, frame):
            return fitted.predict_proba(frame)

    with pytest.raises(ContractViolation, match="predicts on the task's features.*ValueError"):
        probe(EngagementScorer(Pyfunc(), "mlflow"), examples)
    everything = LogisticRegression().fit(examples, rng.integers(0, 2, 50))
    Pyfunc.predict = lambda self, frame: everything.predict_proba(frame)
    assert probe(EngagementScorer(Pyfunc(), "mlflow"), examples)["probe_rows"] == 50


def test_a_program_champion_proposes_the_engagement_candidates_through_its_pyfunc(monkeypatch):
    import algo_platform.evaluation.program as program
    from algo_platform.tasks.engagement.two_stage import champion_candidates

    asked = []

    def answer(history, call):
        asked.append(history)
        return [50, 40, 30][: 3 - len(history)], [2.0, 1.0, 0.0][: 3 - len(history)]

    monkeypatch.setattr(program, "load_program", lambda uri: program.ProgramRecommender(Lists(answer)))
    data = sequences([[1, 2], [], [3]], [[4], [5], []])
    item_ids = np.array([-1, 10, 20, 30, 40, 50])
    champion = {"model_format": "mlflow", "model_uri": "models:/x/1"}
    rows, found, log_probs = champion_candidates(champion, data, item_ids, latest=False, candidates=3)
    assert rows.tolist() == [0, 2] and asked == [[10, 20], [30]]  # histories before the held-out day
    assert found.tolist() == [[50, -1, -1], [50, 40, -1]]  # a short list is padded, never ranked above
    assert np.isneginf(log_probs[0, 1:]).all() and np.exp(log_probs[1, :2]).sum() == pytest.approx(1.0)
    rows, _, _ = champion_candidates(champion, data, item_ids, latest=True, candidates=3)
    assert rows.tolist() == [0, 1, 2] and asked[-3:] == [[10, 20, 40], [50], [30]]  # whole sequences
