"""The Dagster UI as a person uses it, in headless Chromium (Debian's chromium + chromium-driver).

Skips when no Chromium is installed, fails instead when REQUIRE_BROWSER=1 (.ci/run sets it).
Screenshots land in test-output/ui/.
"""

import datetime as dt
import time

import dagster as dg

from tests.support.browser import SCREENSHOTS, open_page, sign_in, stays_absent, until
from tests.support.factories import ALL_ASSETS as ASSETS
from tests.support.factories import PROJECT
from tests.support.processes import cli, wait_for
from tests.support.web_platform import OTHER_PROJECT, start_web_platform


def _launch_buttons(driver) -> list:
    from selenium.webdriver.common.by import By

    return [
        b
        for b in driver.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
        if b.text.startswith("Launch") and b.is_enabled()
    ]


def _choose_partition(driver, day: str) -> list:
    """Type the day into the launch dialog until its Launch button is enabled.

    On a loaded machine the dialog can take the text before it has loaded the partitions: type it
    again then."""
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
            if found := _launch_buttons(driver):
                return found
            time.sleep(1)
    return until(driver, _launch_buttons, "an enabled Launch button")


def _buttons(driver, label: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.XPATH, f"//button[contains(., '{label}')]")


def test_people_sign_in_launch_what_their_role_allows_and_are_audited(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    new_day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()

    def prepare(env: dict) -> None:
        # Everything materialized once (so the report exists), plus one more day to ingest from the UI.
        cli(
            env,
            "algo-platform",
            "demo",
            "--project",
            PROJECT,
            "--days",
            "2",
            "--events-per-day",
            "2000",
            "--epochs",
            "1",
        )
        cli(env, "algo-platform", "generate", "--project", PROJECT, "--days", "1", "--events-per-day", "1500",
            "--end-date", new_day)  # fmt: skip

    web = start_web_platform(tmp_path, with_daemon=True, prepare=prepare)
    base, home = web.base, web.home
    try:
        # 1. Signed out, the UI is the sign-in page; an editor of team_a signs in.
        sign_in(browser, base, "edna", web.passwords["edna"])
        browser.save_screenshot(str(SCREENSHOTS / "0-signed-in.png"))

        # 2. The catalog lists edna's project, every asset of it, and nothing of team_b.
        open_page(browser, f"{base}/assets")
        until(browser, lambda d: PROJECT in d.find_element(By.TAG_NAME, "body").text.split(), "team_a's assets")
        assert stays_absent(browser, OTHER_PROJECT)
        open_page(browser, f"{base}/assets/{PROJECT}")
        until(browser, lambda d: all(a in d.find_element(By.TAG_NAME, "body").text for a in ASSETS), "all assets")
        browser.save_screenshot(str(SCREENSHOTS / "1-assets.png"))

        # 3. The editor launches team_a's ingest for one day from the job page ...
        open_page(browser, f"{base}/locations/{PROJECT}/jobs/{PROJECT}_ingest_job")
        until(browser, lambda d: [b for b in _buttons(d, "Materialize all") if b.is_enabled()], "Materialize all")[
            0
        ].click()
        launch = _choose_partition(browser, new_day)
        browser.save_screenshot(str(SCREENSHOTS / "2-launch.png"))
        launch[-1].click()

        def ingested() -> bool:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                return new_day in instance.get_materialized_partitions(dg.AssetKey([PROJECT, "item_features"]))

        wait_for(ingested, f"the UI-launched ingest of {new_day} to succeed", tmp_path)
        # ... and the runs list says who launched it.
        open_page(browser, f"{base}/runs")
        until(browser, lambda d: "Success" in d.find_element(By.TAG_NAME, "body").text, "a successful run")
        until(browser, lambda d: "edna" in d.find_element(By.TAG_NAME, "body").text, "the run's user")
        browser.save_screenshot(str(SCREENSHOTS / "3-runs.png"))

        # 4. team_b, where edna holds no role, is not there for her: no job page, no launch button.
        open_page(browser, f"{base}/locations/{OTHER_PROJECT}/jobs/{OTHER_PROJECT}_ingest_job")
        assert stays_absent(browser, "Materialize all")

        # 5. The evaluation report's plots render.
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

        # 6. The editor uploads an event file from the browser into team_a's landing zone.
        export = tmp_path / "app-export.csv"
        export.write_text(f"user_id,item_id,ts\n7,70,{new_day}T07:00:00Z\n8,80,{new_day}T08:00:00Z\n")
        open_page(browser, f"{base}/platform/upload")
        Select(browser.find_element(By.ID, "project")).select_by_value(PROJECT)
        browser.find_element(By.ID, "date").send_keys(new_day)
        browser.find_element(By.ID, "file").send_keys(str(export))
        browser.find_element(By.ID, "upload").click()
        until(browser, lambda d: d.find_elements(By.ID, "confirm"), "the upload's preview")[0].click()
        result = until(browser, lambda d: d.find_elements(By.ID, "result"), "the upload's result")[0].text
        assert f"landed 2 rows in {PROJECT} for {new_day}" in result, result
        assert (web.tmp / "storage" / "projects" / PROJECT / "landing" / "events" / new_day / export.name).is_file()
        browser.save_screenshot(str(SCREENSHOTS / "5-upload.png"))
        browser.find_element(By.ID, "sign-out").click()
        until(browser, lambda d: "/auth/sign-in" in d.current_url, "the sign-in page after signing out")

        # 7. A launcher of team_b sees none of team_a's runs or previews, may run its jobs but not
        # materialize ad hoc: the dialog says why.
        sign_in(browser, base, "lars", web.passwords["lars"])
        open_page(browser, f"{base}/runs")
        assert stays_absent(browser, "edna")  # team_a's runs, launched by edna
        open_page(browser, f"{base}/assets/{PROJECT}/raw_events")
        assert stays_absent(browser, "preview")
        browser.save_screenshot(str(SCREENSHOTS / "6-other-team-hidden.png"))
        open_page(browser, f"{base}/assets/{OTHER_PROJECT}/raw_events")
        until(browser, lambda d: [b for b in _buttons(d, "Materialize") if b.is_enabled()], "Materialize")[0].click()
        _choose_partition(browser, new_day)[-1].click()
        refusal = until(
            browser, lambda d: "Refused by algo-platform" in d.find_element(By.TAG_NAME, "body").text, "the refusal"
        )
        assert refusal
        assert "needs editor; lars is launcher" in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(SCREENSHOTS / "6-refused.png"))

        # 8. A viewer sees the asset graph and every launch button is disabled.
        sign_in(browser, base, "vic", web.passwords["vic"])
        open_page(browser, f"{base}/asset-groups")
        until(browser, lambda d: f"{PROJECT}_ingest" in d.find_element(By.TAG_NAME, "body").text, "the asset graph")
        until(
            browser,
            lambda d: (buttons := _buttons(d, "Materialize all")) and not buttons[0].is_enabled(),
            "the graph's Materialize all, disabled",
        )
        browser.save_screenshot(str(SCREENSHOTS / "7-viewer.png"))

        # 9. A platform admin reads the audit log in the browser.
        sign_in(browser, base, "root", web.passwords["root"])
        open_page(browser, f"{base}/platform/audit")
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit tr")]
        browser.save_screenshot(str(SCREENSHOTS / "8-audit.png"))

        def logged(*words: str) -> bool:
            return any(all(w in row.split() for w in words) for row in rows)

        for user in ("edna", "lars", "vic", "root"):
            assert logged(user, "sign-in", "allowed"), user
        assert logged("edna", PROJECT, "launchPipelineExecution", "allowed")
        assert logged("lars", OTHER_PROJECT, "launchPipelineExecution", "denied")
        assert logged("edna", PROJECT, "upload", "allowed")
    finally:
        web.processes.stop_all()


def _responds(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False
