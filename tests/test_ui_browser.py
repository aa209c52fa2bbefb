"""The Dagster UI as a person uses it, in headless Chromium (Debian's chromium + chromium-driver).

Skips when no Chromium is installed, fails instead when REQUIRE_BROWSER=1 (.ci/run sets it).
Screenshots land in test-output/ui/.
"""

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import PROJECT
from tests.test_daemon_e2e import BIN, REPO, WORKSPACE, Processes, cli, free_port, temporary_platform, wait_for
from tests.test_pipeline import ALL_ASSETS as ASSETS

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "test-output" / "ui"


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = "no Chromium here: apt-get install chromium chromium-driver"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def dismiss_community_popup(driver) -> bool:
    """Dagster's "Join the community" pop-up can open at any moment of the first minutes, over
    whatever dialog is open, and takes the keyboard: skip it wherever it shows."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    skips = driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']")  # no other Skip on our pages
    for skip in skips:
        try:
            skip.click()
        except WebDriverException:  # gone, or covered, between finding and clicking
            continue
        time.sleep(0.5)
    return bool(skips)


def until(driver, find, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dismiss_community_popup(driver)
        found = find(driver)
        if found:
            return found
        time.sleep(0.5)
    driver.save_screenshot(str(SCREENSHOTS / "failure.png"))
    pytest.fail(f"UI: gave up waiting for {what}; see {SCREENSHOTS / 'failure.png'}")


def open_page(driver, url: str) -> None:

    driver.get(url)
    time.sleep(2)
    dismiss_community_popup(driver)


def _launch_buttons(driver) -> list:
    from selenium.webdriver.common.by import By

    return [
        b
        for b in driver.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
        if b.text.startswith("Launch") and b.is_enabled()
    ]


def _choose_partition(driver, day: str) -> list:
    """Type the day into the launch dialog until its Launch button is enabled.

    The community pop-up can open over the dialog and take the typed text; on a loaded machine
    the dialog can also take it before it has loaded the partitions. Type it again then."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    for _ in range(3):
        field = until(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=dialog] input[type=text]"), "the partition field"
        )[0]
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(day, Keys.ENTER)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if dismiss_community_popup(driver):
                break  # it took the keyboard: type the day again
            if found := _launch_buttons(driver):
                return found
            time.sleep(1)
    return until(driver, _launch_buttons, "an enabled Launch button")


def test_a_person_sees_the_assets_launches_an_ingest_and_reads_the_report(browser, tmp_path):
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    env, home = temporary_platform(tmp_path, window_days=2)
    # A second team's project in the same workspace, scaffolded the way a team would.
    cli(env, "algo-platform", "project", "new", "team_b", "--workspace", env[WORKSPACE])
    # Everything materialized once (so the report exists), plus one more day to ingest from the UI.
    cli(env, "algo-platform", "demo", "--project", PROJECT, "--days", "2", "--events-per-day", "2000", "--epochs", "1")
    new_day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()
    cli(
        env,
        "algo-platform",
        "generate",
        "--project",
        PROJECT,
        "--days",
        "1",
        "--events-per-day",
        "1500",
        "--end-date",
        new_day,
    )

    processes = Processes(env, tmp_path)
    port = free_port()
    try:
        # The entry point `make dev` runs: the UI must work behind the cross-site write guard.
        processes.start(
            "webserver",
            str(BIN / "algo-platform"),
            "webserver",
            "-w",
            env[WORKSPACE],
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        )
        processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _responds(f"{base}/server_info"), "the webserver", tmp_path)

        # 1. The catalog lists both projects, and every asset of ours.
        open_page(browser, f"{base}/assets")
        until(browser, lambda d: {PROJECT, "team_b"} <= set(d.find_element(By.TAG_NAME, "body").text.split()), "both")
        open_page(browser, f"{base}/assets/{PROJECT}")
        until(browser, lambda d: all(a in d.find_element(By.TAG_NAME, "body").text for a in ASSETS), "all assets")
        browser.save_screenshot(str(SCREENSHOTS / "1-assets.png"))

        # 2. Launch the ingest job's assets for one day from the job page.
        open_page(browser, f"{base}/locations/{PROJECT}/jobs/{PROJECT}_ingest_job")
        until(
            browser,
            lambda d: d.find_elements(By.XPATH, "//button[contains(., 'Materialize all')]"),
            "the Materialize all button",
        )[0].click()
        launch = _choose_partition(browser, new_day)
        browser.save_screenshot(str(SCREENSHOTS / "2-launch.png"))
        launch[-1].click()

        # 3. The run succeeds.
        def ingested() -> bool:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                return new_day in instance.get_materialized_partitions(dg.AssetKey([PROJECT, "item_features"]))

        wait_for(ingested, f"the UI-launched ingest of {new_day} to succeed", tmp_path)
        open_page(browser, f"{base}/runs")
        until(browser, lambda d: "Success" in d.find_element(By.TAG_NAME, "body").text, "a successful run")
        browser.save_screenshot(str(SCREENSHOTS / "3-runs.png"))

        # 4. The evaluation report's plots render.
        open_page(browser, f"{base}/assets/{PROJECT}/evaluation_report")
        show = until(
            browser,
            lambda d: d.find_elements(
                By.XPATH, "//td[normalize-space()='plots']/ancestor::tr[1]//*[contains(., 'Show Markdown')]"
            ),
            "the plots metadata",
        )
        browser.execute_script("arguments[0].scrollIntoView()", show[-1])
        show[-1].click()
        images = until(
            browser,
            lambda d: [
                i for i in d.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']") if i.size["width"] > 200
            ],
            "the plots",
        )
        assert len(images) == 3
        browser.save_screenshot(str(SCREENSHOTS / "4-evaluation-plots.png"))
    finally:
        processes.stop_all()


def _responds(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False
