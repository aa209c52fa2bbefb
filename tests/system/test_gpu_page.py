"""The GPU page as people use it: a real webserver, headless Chromium, the shipped fleet file.

Without Kubernetes a team queue is the Dagster pool `gpu-<queue>` (`algo-platform fleet
local-pools` sizes it): here every slot of recsys is claimed and one more training step waits.
GPU-hours come from the training assets' materializations, written over the last days as the
model asset writes them (tests/pipeline and tests/system/test_k8s_launcher.py run it).
"""

import datetime as dt
import logging
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import requests
import yaml

from algo_platform.core.project import PROJECT_TAG
from tests.support.browser import SCREENSHOTS, open_page, sign_in, until
from tests.support.factories import PROJECT
from tests.support.processes import BIN
from tests.support.web_platform import OTHER_PROJECT, start_web_platform

REPO = Path(__file__).parents[2]
# (days ago, GPU-hours, utilisation %) of team_a's training runs
RUNS = [(1, 2.0, 80.0), (1, 1.0, 20.0), (3, 4.0, 60.0), (12, 0.5, 90.0), (40, 9.0, 50.0)]


def _queue(projects: Path, project: str, queue: str) -> None:
    path = projects / project / "project.yaml"
    document = yaml.safe_load(path.read_text())
    document.setdefault("compute", {})["queue"] = queue
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _materialized(instance: dg.DagsterInstance, key: list[str], when: dt.datetime, metadata: dict) -> None:
    """A model materialization as of `when` (the instance stamps events with the time they are stored)."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="__RUNLESS_JOB__",
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(key, metadata=metadata)),
    )
    instance.store_event(EventLogEntry(error_info=None, level=logging.INFO, user_message="", run_id="",
                                       timestamp=when.timestamp(), dagster_event=event))  # fmt: skip


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    def prepare(env: dict) -> None:
        projects = Path(env["ALGO_PLATFORM_PROJECTS"])
        _queue(projects, PROJECT, "recsys")
        _queue(projects, OTHER_PROJECT, "ads")
        subprocess.run([str(BIN / "algo-platform"), "fleet", "local-pools"], env=env, check=True, capture_output=True)
        from dagster._core.storage.dagster_run import DagsterRun

        os.environ["DAGSTER_HOME"], previous = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
        try:
            with dg.DagsterInstance.get() as instance:
                now = dt.datetime.now(dt.UTC)
                for days_ago, hours, utilisation in RUNS:
                    metadata = {"gpu_hours": hours, "gpu_utilization_mean_pct": utilisation, "gpus": 1.0}
                    _materialized(instance, [PROJECT, "sequence_model"], now - dt.timedelta(days=days_ago), metadata)
                for slot, project in enumerate([PROJECT] * 8 + [PROJECT, OTHER_PROJECT]):
                    # recsys' quota is 8: the ninth and tenth training steps wait (team_b's here only to
                    # show that another project's run is not named)
                    run_id = f"run-{slot:02d}-{project}"
                    instance.add_run(DagsterRun(job_name=f"{project}_train_job", run_id=run_id,
                                                tags={PROJECT_TAG: project}))  # fmt: skip
                    instance.event_log_storage.claim_concurrency_slot("gpu-recsys", run_id, "sequence_model")
        finally:
            if previous is None:
                os.environ.pop("DAGSTER_HOME")
            else:
                os.environ["DAGSTER_HOME"] = previous

    platform = start_web_platform(tmp_path_factory.mktemp("gpu-page"), prepare=prepare,
                                  ALGO_PLATFORM_FLEET=str(REPO / "deploy" / "gpu-fleet.yaml"))  # fmt: skip
    try:
        yield platform
    finally:
        platform.processes.stop_all()


def test_a_member_sees_the_queues_of_their_projects_and_30_days_of_gpu_use(web, browser):
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, web.base, "edna", web.passwords["edna"])  # team_a only
    open_page(browser, f"{web.base}/platform")
    browser.find_element(By.LINK_TEXT, "GPUs").click()
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts-drawn"),
          "every chart drawn", timeout=60)  # fmt: skip
    charts = {
        e.get_attribute("id"): e.get_attribute("data-drawn") for e in browser.find_elements(By.CLASS_NAME, "chart")
    }
    assert charts == {"queue-use": "1", "gpu-hours": "1", "gpu-utilisation": "1"}
    recsys = browser.find_element(By.CSS_SELECTOR, "tr[data-queue='recsys']")
    cells = {name: recsys.find_element(By.CLASS_NAME, name).text for name in ("quota", "in-use", "waiting")}
    assert cells == {"quota": "8", "in-use": "8", "waiting": "2"}
    assert "run-08-t (team_a): waiting 0 min" in recsys.text
    assert "a run of another project: waiting" in recsys.text and "run-09" not in recsys.text
    browser.save_screenshot(str(SCREENSHOTS / "gpu-page.png"))

    # The chart's numbers: GPU-hours per day of the last 30 (the run 40 days ago is not among them).
    csv = browser.execute_script("return window.algoPlatformCsv('gpu-hours')").splitlines()
    assert csv[0] == f"x,{PROJECT}" and len(csv) - 1 == 30
    assert sum(float(line.split(",")[1]) for line in csv[1:]) == pytest.approx(2.0 + 1.0 + 4.0 + 0.5)
    today = dt.datetime.now(dt.UTC).date()
    utilisation = dict(line.split(",") for line in browser.execute_script(
        "return window.algoPlatformCsv('gpu-utilisation')").splitlines()[1:])  # fmt: skip
    # Weighted by GPU-hours: (2 × 80 + 1 × 20) / 3.
    assert float(utilisation[(today - dt.timedelta(days=1)).isoformat()]) == pytest.approx(60.0)


def test_the_gpu_page_shows_only_the_queues_of_a_users_projects(web):
    lars = web.client("lars")  # launcher of team_b, on the ads queue
    page = lars.http.get(f"{web.base}/platform/gpus", timeout=60)
    assert page.status_code == 200
    assert "data-queue='ads'" in page.text and "data-queue='recsys'" not in page.text
    assert "run-0" not in page.text and PROJECT not in page.text  # nothing of team_a's runs
    anonymous = requests.get(f"{web.base}/platform/gpus", timeout=60, allow_redirects=False)
    assert anonymous.status_code in (401, 303)
