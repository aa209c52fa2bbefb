"""A grey release of an engagement task through the real assets: the task's challenger re-ranks its
arm's users, the generator's users answer what they are served, and the task's own release report
judges the engaged rate of served items per arm (`tasks[].release` in project.yaml)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from algo_platform.cli import main as cli
from algo_platform.cli.simulate import ReleaseSimulation
from algo_platform.core.project import load_project
from algo_platform.core.settings import Settings
from algo_platform.ingest.datagen import generate, world_for
from algo_platform.resources.environment import build_resources
from tests.support.factories import END_DAY, PROJECT, metadata_of

SEED, EVENTS = 4, 3_000
TASK = {
    "name": "ranking",
    "type": "engagement",
    "label": {"events": ["like"], "complete_ratio": 0.7},
    "model": {"epochs": 3},
    "release": {"stages": [20, 100], "min_days": 1, "min_users": 30, "margin": 0.05, "stale_days": 2},
}


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("task-release")
    settings = Settings(env="local", storage_root=str(root / "storage"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGO_PLATFORM_PROJECTS", str(root / "projects"))
        start = (END_DAY - dt.timedelta(days=30)).isoformat()
        created = CliRunner().invoke(
            cli, ["project", "new", PROJECT, "--partitions-start", start, "--workspace", str(root / "workspace.yaml")]
        )
        assert created.exit_code == 0, created.output
        folder = root / "projects" / PROJECT
        document = yaml.safe_load((folder / "project.yaml").read_text())
        document["model"], document["tasks"] = {"family": "itemknn"}, [TASK]
        (folder / "project.yaml").write_text(yaml.safe_dump(document))
        days = generate(settings.layout.project(PROJECT).root, 7, EVENTS, seed=SEED, end_date=END_DAY)
        (root / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            project = load_project(folder)
            simulation = ReleaseSimulation(project, settings, instance, world_for(EVENTS, SEED), EVENTS, SEED)
            for day in days:
                assert simulation.job("ingest_job", dt.date.fromisoformat(day.day)).success
            assert simulation.job("retrain_job", END_DAY).success  # the task's first champion
            tracking = build_resources(settings, project)["ranking_tracking"]
            yield simulation, tracking, root, settings


def _served(settings: Settings, day: dt.date) -> pd.DataFrame:
    path = Path(settings.layout.project(PROJECT).root) / "ranking_recommendations" / f"{day.isoformat()}.parquet"
    return pd.read_parquet(path)


def test_an_engagement_tasks_challenger_serves_its_arm_and_is_judged_by_engaged_rate(loop):
    from algo_platform.assets.release import start_release

    simulation, tracking, root, settings = loop
    champion = tracking.champion().version
    day = END_DAY + dt.timedelta(days=1)
    lived = simulation.live(day)  # a second model of the task, trained on one more day
    assert lived.retrain.success
    if tracking.challenger() is None:  # it did not pass the offline gate: release it as one that had
        candidate = str(metadata_of(lived.retrain, "ranking_champion")["candidate_version"])
        start_release(tracking, PROJECT, candidate, day.isoformat(), share=20, task="ranking")
        assets = simulation.defs.resolve_implicit_global_asset_job_def()
        assert assets.execute_in_process(
            partition_key=day.isoformat(), instance=simulation.instance,
            asset_selection=[dg.AssetKey([PROJECT, "ranking_recommendations"])],
        ).success  # fmt: skip
    challenger = tracking.challenger().version
    served = _served(settings, day)
    on_challenger = served["arm"] == "challenger"
    assert on_challenger.mean() == pytest.approx(0.20, abs=0.07)
    assert (served.loc[on_challenger, "ranker_version"] == challenger).all()
    assert (served.loc[~on_challenger, "ranker_version"] == champion).all()

    judged = simulation.live(day + dt.timedelta(days=1))
    report = metadata_of(judged.ingest, "ranking_release_report")
    print(f"engagement release: {report['decision']}: {report['why']}")
    assert report["experiment"] == f"{PROJECT}/ranking/v{challenger}/{(day + dt.timedelta(days=1)).isoformat()}"
    assert report["champion_users"] + report["challenger_users"] == len(served)
    assert 0 < report["champion_engaged_rate"] < 1 and 0 <= report["challenger_engaged_rate"] < 1
    assert report["decision"] in {"continue", "advance", "promote", "roll_back"}  # judged, not paused
    # The next-item task has no release here: its lists are the champion's for everyone.
    assert "arm" not in pd.read_parquet(
        Path(settings.layout.project(PROJECT).root) / "user_recommendations" / f"{day.isoformat()}.parquet"
    )

    env = {"DAGSTER_HOME": str(root / "home"), "ALGO_PLATFORM_STORAGE": settings.storage_root,
           "MLFLOW_TRACKING_URI": settings.tracking_uri}  # fmt: skip
    status = CliRunner().invoke(cli, ["release", "status", "--project", PROJECT, "--task", "ranking"], env=env)
    assert status.exit_code == 0, status.output
    assert f"challenger v{challenger}" in status.stdout and report["decision"] in status.stdout
    missing = CliRunner().invoke(cli, ["release", "status", "--project", PROJECT], env=env)
    assert missing.exit_code == 2 and "has no release: section" in missing.output
