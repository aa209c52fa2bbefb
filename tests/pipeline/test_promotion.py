"""The champion moves only through a passing gate, never backwards, and keeping it is a normal outcome.

`champion_model` is called directly, as a lone materialization from the UI or a backfill would run
it: no check of the same run stands in front of it."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from algo_platform.assets.evaluation import _as_long_table
from algo_platform.assets.serving import champion_model
from algo_platform.resources.promotion import PromotionGate
from algo_platform.resources.tracking import ExperimentTracking
from tests.support.factories import overall, segments


@pytest.fixture
def tracking(tmp_path):
    return ExperimentTracking(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        artifact_location=str(tmp_path / "artifacts"),
        registered_model_name="test-model",
        experiment_name="test",
    )


def trained(tracking: ExperimentTracking, day: str) -> dict:
    """A registered model version trained for `day`, as sequence_model describes it (its checkpoint
    is a placeholder: promotion never loads it)."""
    checkpoint = Path(tracking.artifact_location).parent / "models" / day / "model.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"placeholder")
    run_id = tracking.log_training(f"model {day}", {}, [1.0], {}, {"dagster_partition": day})
    lineage = {
        "dagster_partition": day,
        "training_sequences": f"seq-{day}",
        "code_version": "abc",
        "dagster_run_id": "r",
    }
    version = tracking.register(run_id, str(checkpoint), lineage)
    return {
        "model_version": version.version,
        "model_uri": str(checkpoint),
        "partition": day,
        "training_sequences": f"seq-{day}",
        "code_version": "abc",
        "run_id": "r",
        "mlflow_run_id": run_id,
        "hyperparameters": {},
    }


def report(model: float, popularity: float, champion: float | None = None) -> pd.DataFrame:
    return _as_long_table(overall(model, popularity, champion), segments([]))


def run_champion_model(tracking: ExperimentTracking, day: str, model: dict, evaluation: pd.DataFrame) -> dict:
    context = dg.build_asset_context(partition_key=day)
    output = champion_model(
        context=context,
        sequence_model=model,
        evaluation_report=evaluation,
        experiment_tracking=tracking,
        promotion=PromotionGate(),
    )
    return output.value


def test_a_rejected_model_materialized_alone_does_not_move_the_champion(tracking):
    first = trained(tracking, "2026-11-19")
    assert run_champion_model(tracking, "2026-11-19", first, report(0.30, 0.10))["outcome"] == "promoted"
    weaker = trained(tracking, "2026-11-20")
    served = run_champion_model(tracking, "2026-11-20", weaker, report(0.20, 0.10, champion=0.30))
    assert tracking.champion().version == first["model_version"]
    assert served["outcome"] == "kept" and served["model_version"] == first["model_version"]
    assert served["model_uri"] == first["model_uri"]  # recommendations come from the champion kept
    assert "vs champion 0.3000" in served["reasons"][0]


def test_a_backfill_of_an_old_day_never_moves_the_champion_backwards(tracking):
    today = trained(tracking, "2026-11-20")
    run_champion_model(tracking, "2026-11-20", today, report(0.30, 0.10))
    old = trained(tracking, "2026-11-10")
    # Its own day's gate passes (it beats the champion of 2026-11-10: none, so popularity) ...
    served = run_champion_model(tracking, "2026-11-10", old, report(0.25, 0.10))
    # ... and still the champion stays the newer model.
    assert tracking.champion().version == today["model_version"]
    assert served["outcome"] == "kept" and any("never moves the champion backwards" in r for r in served["reasons"])


def test_the_champion_of_a_day_is_the_one_promoted_on_or_before_it(tracking):
    first = trained(tracking, "2026-11-10")
    run_champion_model(tracking, "2026-11-10", first, report(0.30, 0.10))
    later = trained(tracking, "2026-11-20")
    run_champion_model(tracking, "2026-11-20", later, report(0.40, 0.10, champion=0.30))
    assert tracking.champion_on("2026-11-15").version == first["model_version"]
    assert tracking.champion_on("2026-11-20").version == later["model_version"]
    assert tracking.champion_on("2026-11-01") is None


def test_a_first_model_that_does_not_beat_popularity_leaves_nothing_to_serve(tracking):
    weak = trained(tracking, "2026-11-20")
    with pytest.raises(dg.Failure, match="no champion to serve"):
        run_champion_model(tracking, "2026-11-20", weak, report(0.05, 0.10))
    assert tracking.champion() is None


def test_a_worse_candidate_of_another_family_is_refused_against_the_serving_champion(tracking):
    """One registered model per task: an EASE candidate is gated against the SASRec champion, and the
    recommendations keep naming the family that serves."""
    sasrec = {**trained(tracking, "2026-11-20"), "family": "sasrec", "source": "built-in"}
    first = run_champion_model(tracking, "2026-11-20", sasrec, report(model=0.30, popularity=0.10))
    assert first["outcome"] == "promoted" and first["family"] == "sasrec"
    ease = {**trained(tracking, "2026-11-21"), "family": "ease", "source": "built-in"}
    kept = run_champion_model(tracking, "2026-11-21", ease, report(model=0.22, popularity=0.10, champion=0.30))
    assert kept["outcome"] == "kept" and kept["model_version"] == first["model_version"]
    assert any("0.2200" in reason and "0.3000" in reason for reason in kept["reasons"]), kept["reasons"]
    assert tracking.champion().version == first["model_version"]


def test_per_family_registrations_move_into_the_tasks_registered_model_once(tmp_path):
    """A project from before one champion per task: `shop-sasrec` (its family, serving v2) and
    `shop-gru4rec` (a family it tried, whose champion never served) become versions of `shop-next_item`."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    legacy = {
        name: ExperimentTracking(tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"),
                                 registered_model_name=name, experiment_name=name)
        for name in ("shop-sasrec", "shop-gru4rec", "shop-ranking-mlp")
    }  # fmt: skip
    for name, days in (("shop-sasrec", ["2026-11-10", "2026-11-11"]), ("shop-gru4rec", ["2026-11-12"]),
                       ("shop-ranking-mlp", ["2026-11-12"])):  # fmt: skip
        for day in days:
            version = trained(legacy[name], day)["model_version"]
            legacy[name].promote(version)
            legacy[name].set_version_tags(version, {"promoted_on": day})
    task = ExperimentTracking(
        tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"), registered_model_name="shop-next_item",
        experiment_name="shop-next_item", legacy_prefix="shop-", not_legacy_prefixes=["shop-ranking"],
        serving_legacy_name="shop-sasrec",
    )  # fmt: skip
    champion = task.champion()
    assert champion.tags["migrated_from"] == "shop-sasrec v2" and champion.tags["family"] == "sasrec"
    versions = task.client.search_model_versions("name = 'shop-next_item'")
    assert sorted(v.tags["migrated_from"] for v in versions) == ["shop-gru4rec v1", "shop-sasrec v1", "shop-sasrec v2"]
    # The day after the other family's promotion, the serving champion is still SASRec's: it never served.
    assert task.champion_on("2026-11-13").tags["migrated_from"] == "shop-sasrec v2"
    task.champion()  # once: a second look copies nothing again
    assert len(task.client.search_model_versions("name = 'shop-next_item'")) == 3
