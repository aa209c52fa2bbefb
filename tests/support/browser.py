"""Headless Chromium (Debian's chromium + chromium-driver) for the tests that use the UI as a person does.

The `browser` fixture (tests/conftest.py) skips when no Chromium is installed and fails instead
when REQUIRE_BROWSER=1 (.ci/run sets it). Screenshots land in test-output/ui/.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.postgres import REPO

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "test-output" / "ui"
# Dagster's newsletter pop-up; the instance setting `nux: enabled: false` must keep it away.
COMMUNITY_PROMPT = "Join the Dagster community"


def chromium(window: str = "1600,1000"):
    """A headless Chromium driver (the caller quits it); skips or fails as the module docstring says."""
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
        f"--window-size={window}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    return driver


def no_community_prompt(driver) -> None:
    from selenium.webdriver.common.by import By

    prompt = driver.find_elements(By.XPATH, f"//*[contains(text(), '{COMMUNITY_PROMPT}')]")
    assert not prompt, "Dagster's newsletter prompt showed: dagster.yaml needs `nux: enabled: false`"


def until(driver, find, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        no_community_prompt(driver)
        found = find(driver)
        if found:
            return found
        time.sleep(0.5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "failure.png"))
    pytest.fail(f"UI: gave up waiting for {what}; see {SCREENSHOTS / 'failure.png'}")


def open_page(driver, url: str) -> None:
    driver.get(url)
    time.sleep(2)
    no_community_prompt(driver)


def sign_in(driver, base: str, user: str, password: str) -> None:
    """The sign-in page, as a person fills it in (any earlier session is dropped first)."""
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base}/assets")
    until(driver, lambda d: "/auth/sign-in" in d.current_url and d.find_elements(By.ID, "username"), "sign-in page")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    until(driver, lambda d: "/auth/sign-in" not in d.current_url, f"{user} to be signed in")


def stays_absent(driver, text: str, seconds: float = 5, rendered: str = "Deployment") -> bool:
    """Whether `text` stays off the page for `seconds` once the UI has rendered (`rendered`, an item of
    its navigation, is on the page): a page that never loads fails the test rather than passing it."""
    from selenium.webdriver.common.by import By

    until(driver, lambda d: rendered in d.find_element(By.TAG_NAME, "body").text, f"the UI to render ({rendered})")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in driver.find_element(By.TAG_NAME, "body").text:
            return False
        time.sleep(0.5)
    return True
