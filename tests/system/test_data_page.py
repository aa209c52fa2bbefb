"""The data page, the upload preview and the GPU page, as people use them: a real webserver,
headless Chromium (one platform for all three: a webserver with its users takes most of a minute).

The project's history is a year of generated days, cleaned and profiled by the platform's own
functions (tests/support/profiles.py); tests/pipeline/test_data_profile.py runs the asset itself.
The GPU page finds the fleet of tests/support/gpu_fleet.py. Screenshots land in test-output/ui/.
"""

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import dagster as dg
import pytest
import requests

from algo_platform.accounts.store import Accounts
from tests.support.browser import SCREENSHOTS, open_page, sign_in, until
from tests.support.candidates import RETRAINS, record_candidates
from tests.support.factories import PROJECT
from tests.support.gpu_fleet import FLEET, prepare_gpu_fleet
from tests.support.profiles import write_profiles
from tests.support.web_platform import OTHER_PROJECT, start_web_platform

DAYS = 370
LAST_DAY = dt.date(2026, 11, 30)
# Every chart of the whole-history page (the project declares no device or region: its events have them).
HISTORY_CHARTS = {
    "events-per-day", "landed-vs-dropped", "quarantined", "quality-over-time", "drift", "dist-event_type",
    "dist-watch_ratio", "dist-device", "dist-region", "dist-extra-rating", "hour-weekday", "tail-user", "tail-item",
    "new-vs-returning", "retention-cohorts", "sequence-lengths",
}  # fmt: skip


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    def prepare(env: dict) -> None:
        write_profiles(str(Path(env["ALGO_PLATFORM_STORAGE"]) / "projects" / PROJECT), DAYS, 120, end=LAST_DAY)
        prepare_gpu_fleet(env)
        record_candidates(env["DAGSTER_HOME"], PROJECT)

    platform = start_web_platform(tmp_path_factory.mktemp("data-page"), prepare=prepare, ALGO_PLATFORM_FLEET=str(FLEET))
    try:
        yield platform
    finally:
        platform.processes.stop_all()


def _landing(web) -> Path:
    return web.tmp / "storage" / "projects" / PROJECT / "landing" / "events"


def _staged_files(web) -> list[Path]:
    staging = web.tmp / "storage" / "staging"
    return [p for p in staging.rglob("*") if p.is_file() and p.name != "staged.json"] if staging.exists() else []


def test_a_viewer_sees_every_chart_of_a_years_history_and_each_ones_numbers(web, browser):
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, web.base, "vic", web.passwords["vic"])
    # The Dagster UI links to the platform's pages, and shows no newsletter prompt (until() checks).
    open_page(browser, f"{web.base}/assets")
    link = until(browser, lambda d: d.find_elements(By.ID, "algo-platform-link"), "the link to the platform's pages")
    link[0].click()
    until(browser, lambda d: d.find_elements(By.ID, "projects"), "the data index")
    browser.find_element(By.LINK_TEXT, PROJECT).click()
    drawn = until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts-drawn"),
                  "every chart drawn", timeout=60)  # fmt: skip
    charts = {
        e.get_attribute("id"): e.get_attribute("data-drawn") for e in browser.find_elements(By.CLASS_NAME, "chart")
    }
    assert set(charts) >= HISTORY_CHARTS and set(charts.values()) == {"1"}, charts
    assert "check-outcomes" not in charts  # no check ran here: no empty chart either
    browser.save_screenshot(str(SCREENSHOTS / "data-page.png"))
    print(f"data page: {len(charts)} charts drawn {int(drawn)} ms after navigation started")

    # The numbers behind a chart, one click away: its CSV holds the page's own figures.
    csv = browser.execute_script("return window.algoPlatformCsv('events-per-day')").splitlines()
    assert csv[0] == "x,events kept,active users" and len(csv) - 1 == DAYS
    events = sum(float(line.split(",")[1]) for line in csv[1:])
    card = browser.find_element(By.XPATH, "//div[@class='card'][span[text()='events kept']]/b").text
    assert f"{events:,.0f}" == card
    assert browser.find_element(By.ID, "quarantined-files").text.count("broken-") == len(range(13, DAYS, 97))

    # One day: its own charts, and links to its partitions in the Dagster UI.
    day = (LAST_DAY - dt.timedelta(days=40)).isoformat()
    open_page(browser, f"{web.base}/platform/data/{PROJECT}?day={day}")
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts-drawn"), "the day's charts")
    links = browser.find_element(By.ID, "partition-links").find_elements(By.TAG_NAME, "a")
    assert any(f"/assets/{PROJECT}/cleaned_events?view=partitions&partition={day}" in a.get_attribute("href")
               for a in links)  # fmt: skip
    day_charts = {e.get_attribute("id") for e in browser.find_elements(By.CLASS_NAME, "chart")}
    assert {"landed-vs-dropped", "dist-event_type", "hour-weekday", "tail-user"} <= day_charts
    browser.save_screenshot(str(SCREENSHOTS / "data-page-day.png"))


def test_the_data_page_is_only_for_the_projects_a_user_holds_a_role_on(web):
    lars = web.client("lars")  # launcher of team_b only
    refused = lars.http.get(f"{web.base}/platform/data/{PROJECT}", headers={"Accept": "text/html"}, timeout=60)
    assert refused.status_code == 403 and "you hold no role on a project named" in refused.text
    unknown = lars.http.get(f"{web.base}/platform/data/no_such_project", headers={"Accept": "text/html"}, timeout=60)
    assert unknown.status_code == 403  # the same answer: a project's name is not for probing
    for encoded in (f"/platform/data/{PROJECT}%2F", f"/platform/data/%2E%2E/{PROJECT}", f"/platform/data/{PROJECT}/"):
        assert lars.http.get(f"{web.base}{encoded}", timeout=60).status_code in (403, 404), encoded
    index = lars.http.get(f"{web.base}/platform/data", timeout=60).text
    assert f">{OTHER_PROJECT}<" in index and f">{PROJECT}<" not in index
    own = lars.http.get(f"{web.base}/platform/data/{OTHER_PROJECT}", timeout=60)
    assert own.status_code == 200 and "No profiles yet" in own.text
    assert web.client("vic").http.get(f"{web.base}/platform/data/{PROJECT}?day=2026-1-1", timeout=60).status_code == 400
    anonymous = requests.get(f"{web.base}/platform/data/{PROJECT}", timeout=60, allow_redirects=False)
    assert anonymous.status_code in (401, 303)
    # The page's scripts come from the platform itself (no CDN); like the stylesheet, they are no secret.
    for script in ("plotly.min.js", "charts.js"):
        served = lars.http.get(f"{web.base}/platform/static/{script}", timeout=60)
        assert served.status_code == 200 and "javascript" in served.headers["content-type"], script
    # Only the named static files are served: nothing else under /platform/static.
    assert requests.get(f"{web.base}/platform/static/platform.css", timeout=60).status_code == 200
    assert requests.get(f"{web.base}/platform/static/../../etc/passwd", timeout=60).status_code in (401, 404)


def _defective_file(path: Path, day: str) -> Path:
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{u},{u % 9 + 1},4.0,{day}T{u % 24:02d}:00:00Z" for u in range(1, 97)]
    lines += [f",3,4.0,{day}T10:00:00Z", f"-4,3,4.0,{day}T10:00:00Z", "5,3,4.0,2031-01-01T10:00:00Z"]
    lines += [f"6,3,4.0,{(dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()}T10:00:00Z"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_upload_is_previewed_with_its_drop_reasons_before_anything_lands(web, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    day = "2026-11-20"
    upload = _defective_file(tmp_path / "app-export.csv", day)
    sign_in(browser, web.base, "edna", web.passwords["edna"])

    def preview() -> None:
        open_page(browser, f"{web.base}/platform/upload")
        Select(browser.find_element(By.ID, "project")).select_by_value(PROJECT)
        browser.find_element(By.ID, "date").send_keys(day)
        browser.find_element(By.ID, "map").send_keys("user_id=userId, item_id=movieId, ts=timestamp")
        browser.find_element(By.ID, "file").send_keys(str(upload))
        browser.find_element(By.ID, "upload").click()
        until(browser, lambda d: d.find_elements(By.ID, "confirm"), "the preview")

    preview()
    reasons = browser.find_element(By.ID, "drop-reasons").text
    for reason in ("missing_user_id", "non_positive_user_id", "future_timestamp", "outside_partition_day"):
        assert reason in reasons, reasons
    assert "rating -> not loaded" not in browser.find_element(By.ID, "column-mapping").text.replace("\n", " -> ")
    until(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charts-drawn"), "its charts")
    browser.save_screenshot(str(SCREENSHOTS / "upload-preview.png"))
    assert not (_landing(web) / day).exists()  # nothing landed while the preview is shown
    assert [f.read_bytes() for f in _staged_files(web)] == [upload.read_bytes()]

    browser.find_element(By.ID, "cancel").click()
    result = until(browser, lambda d: d.find_elements(By.ID, "result"), "the cancellation")[0].text
    assert "was not landed" in result and not _staged_files(web) and not (_landing(web) / day).exists()

    preview()
    browser.find_element(By.ID, "confirm").click()
    result = until(browser, lambda d: d.find_elements(By.ID, "result"), "the upload's result")[0].text
    assert f"landed 100 rows in {PROJECT} for {day}" in result, result
    landed = _landing(web) / day / upload.name
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == hashlib.sha256(upload.read_bytes()).hexdigest()
    assert not _staged_files(web)


def test_a_staged_file_is_its_uploaders_alone_and_lands_only_as_previewed(web, tmp_path):
    day = "2026-11-21"
    upload = _defective_file(tmp_path / "scripted.csv", day)
    edna = web.client("edna")

    def staged_preview() -> dict:
        with upload.open("rb") as file:
            answer = edna.http.post(
                f"{web.base}/platform/upload",
                data={
                    "csrf": edna.csrf,
                    "project": PROJECT,
                    "date": day,
                    "step": "preview",
                    "map": "user_id=userId, item_id=movieId, ts=timestamp",
                },  # fmt: skip
                files={"file": (upload.name, file)},
                headers={"Accept": "application/json"},
                timeout=60,
            )
        assert answer.status_code == 200, answer.text
        return answer.json()

    preview = staged_preview()
    assert preview["rows"] == 100 and preview["dropped"]["missing_user_id"] == 1 and preview["days"][day] == 98
    # Another editor-or-better user cannot confirm it: the token is looked up in their own staging area.
    root = web.client("root")
    other = root.http.post(f"{web.base}/platform/upload/confirm", data={"csrf": root.csrf, "token": preview["token"]},
                           headers={"Accept": "application/json"}, timeout=60)  # fmt: skip
    assert other.status_code == 400 and "nothing staged" in other.json()["message"]
    # A staged file changed behind the preview's back does not land.
    staged = next(f for f in _staged_files(web) if f.name == upload.name)
    staged.write_bytes(staged.read_bytes() + b"7,3,4.0,2026-11-21T11:00:00Z\n")
    changed = edna.http.post(f"{web.base}/platform/upload/confirm", data={"csrf": edna.csrf, "token": preview["token"]},
                             headers={"Accept": "application/json"}, timeout=60)  # fmt: skip
    assert changed.status_code == 400 and "changed after its preview" in changed.json()["message"]
    assert not (_landing(web) / day).exists()
    # A viewer cannot stage anything.
    vic = web.client("vic")
    with upload.open("rb") as file:
        refused = vic.http.post(f"{web.base}/platform/upload", data={"csrf": vic.csrf, "project": PROJECT, "date": day,
                                "step": "preview"}, files={"file": (upload.name, file)},
                                headers={"Accept": "application/json"}, timeout=60)  # fmt: skip
    assert refused.status_code == 403
    audit = web.users  # noqa: F841 - the audit log is read through the CLI below
    from tests.support.web_platform import audit as read_audit

    actions = {(row["user"], row["action"], row["outcome"]) for row in read_audit(web, "--project", PROJECT)}
    assert ("edna", "upload-preview", "allowed") in actions and ("edna", "upload", "failed") in actions
    assert json.dumps(preview)  # the preview's answer is plain JSON for scripts


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
    assert re.search(r"run-08-t \(team_a\): waiting \d+ (min|h)", recsys.text), recsys.text
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


def test_a_projects_models_page_shows_every_candidate_against_the_champion_and_popularity(web):
    """Each retrain's candidate with its family, source, figure, the champion's and popularity's on
    the same split, and why it was promoted or refused; the home page links to it; a user without a
    role on the project is refused, as for a project that does not exist."""
    vic = web.client("vic")
    home = vic.http.get(f"{web.base}/platform", timeout=30)
    assert f"/platform/models/{PROJECT}" in home.text
    page = vic.http.get(f"{web.base}/platform/models/{PROJECT}", timeout=30)
    assert page.status_code == 200
    table = page.text.split("id='candidates-next_item'")[1].split("</table>")[0]
    rows = table.split("<tr class=")[1:]
    assert len(rows) == len(RETRAINS)
    newest_first = list(reversed(RETRAINS))
    for row, (day, family, source, value, _, popularity, outcome, _) in zip(rows, newest_first, strict=True):
        assert day in row and f">{family}<" in row and source in row and f"{value:.4f}" in row
        assert f"{popularity:.4f}" in row and f">{outcome}<" in row
    assert "vs champion 0.0815" in rows[1]  # the refused candidate says why
    specs = json.loads(page.text.split("id='chart-specs'>")[1].split("</script>")[0])
    chart = next(spec for spec in specs if spec["id"] == "candidates-next_item-chart")
    assert [round(y, 3) for y in chart["data"][0]["y"]] == [r[3] for r in RETRAINS]
    for user, project in (("lars", PROJECT), ("vic", "no_such_project")):
        refused = web.client(user).http.get(f"{web.base}/platform/models/{project}", timeout=30)
        assert refused.status_code == 403 and "you hold no role" in refused.text


def test_a_report_through_dagsters_rest_api_cannot_forge_a_candidate_or_a_script_link(web):
    """An editor may report materializations (Dagster's REST API), but such a report is no run's
    decision: it adds no candidate row, a `javascript:` run link is never rendered, and the page's
    Content-Security-Policy forbids inline scripts in any case."""
    edna = web.client("edna")
    forged = {
        "sequence_model": {"family": "x", "mlflow_run": "javascript:fetch('/platform/users').then(alert)"},
        "champion_model": {"candidate_version": "99", "outcome": "promoted", "why": "forged"},
    }
    for asset, metadata in forged.items():
        reported = edna.http.post(f"{web.base}/report_asset_materialization/{PROJECT}/{asset}",
                                  json={"partition": "2026-11-21", "metadata": metadata}, timeout=30)  # fmt: skip
        assert reported.status_code == 200, reported.text
    page = web.client("vic").http.get(f"{web.base}/platform/models/{PROJECT}", timeout=30)
    assert page.status_code == 200
    assert "javascript:" not in page.text and "v99" not in page.text
    table = page.text.split("id='candidates-next_item'")[1].split("</table>")[0]
    assert len(table.split("<tr class=")[1:]) == len(RETRAINS)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_the_releases_page_is_for_members_and_only_a_projects_admins_may_steer_it(web):
    """A viewer reads the page (this project has no release: section, and the page says so); steering
    is refused without the form's token, to a viewer and an editor, and to a user with no role, each
    with its audit row; an admin passes the guard and is told what the release's state allows."""
    vic = web.client("vic")
    page = vic.http.get(f"{web.base}/platform/releases/{PROJECT}", timeout=30)
    assert page.status_code == 200 and "no release: section" in page.text
    assert f"/platform/releases/{PROJECT}" in vic.http.get(f"{web.base}/platform", timeout=30).text
    assert "release-advance" not in page.text  # no buttons for a viewer
    url = f"{web.base}/platform/releases/{PROJECT}/advance"
    assert vic.http.post(url, data={"csrf": "forged"}, timeout=30).status_code == 400
    for user in ("vic", "edna"):
        client = web.client(user)
        refused = client.http.post(url, data={"csrf": client.csrf}, timeout=30)
        assert refused.status_code == 403 and "needs admin there" in refused.text
    lars = web.client("lars")
    assert lars.http.post(url, data={"csrf": lars.csrf}, timeout=30).status_code == 403
    ada = web.client("ada")
    answered = ada.http.post(url, data={"csrf": ada.csrf}, timeout=30)
    assert answered.status_code == 409 and "no release: section" in answered.text
    with dg.DagsterInstance.from_config(str(web.home)) as instance:
        accounts = Accounts.for_instance(instance)
        try:
            rows = [(e.user, e.outcome) for e in accounts.entries(project=PROJECT) if e.action == "release.advance"]
        finally:
            accounts.close()
    assert rows == [("vic", "denied"), ("vic", "denied"), ("edna", "denied"), ("lars", "denied"), ("ada", "failed")]
