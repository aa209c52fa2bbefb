from pathlib import Path

import pytest

from algo_platform.core.project import Project
from algo_platform.core.settings import Settings
from tests.support.factories import PROJECT, make_project

pytest_plugins = ["tests.support.postgres"]

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def mlflow_uris_do_not_leak():
    """A test that calls `mlflow.set_tracking_uri`, as a user loading the champion does, must not
    hand its store to the next test's processes through MLFLOW_TRACKING_URI."""
    from algo_platform.resources.tracking import mlflow_uris_kept

    with mlflow_uris_kept():
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """tests/system/ (servers, daemons, a browser, a JVM, a Kubernetes emulator, whole pipelines in
    processes of their own) is marked `system`; `make test-fast` runs unit/ and pipeline/."""
    for item in items:
        if Path(item.path).is_relative_to(TESTS / "system"):
            item.add_marker(pytest.mark.system)


@pytest.fixture
def project() -> Project:
    return make_project()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="local", storage_root=str(tmp_path / "storage"))


@pytest.fixture
def storage_root(settings: Settings) -> str:
    """The test project's own storage: its landing zone, quarantine, tables and models are under it."""
    root = Path(settings.layout.project(PROJECT).root)
    root.mkdir(parents=True)
    return str(root)


@pytest.fixture
def projects_dir(tmp_path: Path, settings: Settings, monkeypatch) -> Path:
    """A projects folder holding the test project, used by the CLI (ALGO_PLATFORM_PROJECTS), with
    the CLI's storage root set to the test settings' one."""
    import yaml

    folder = tmp_path / "projects"
    (folder / PROJECT).mkdir(parents=True)
    document = make_project().model_dump(mode="json")
    (folder / PROJECT / "project.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(folder))
    monkeypatch.setenv("ALGO_PLATFORM_STORAGE", settings.storage_root)
    return folder


@pytest.fixture
def browser():
    """Headless Chromium (tests/support/browser.py)."""
    from tests.support.browser import chromium

    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def web_platform(tmp_path_factory):
    """`algo-platform webserver` on a platform with two projects and a user of each role
    (tests/support/web_platform.py), one per test module."""
    from tests.support.web_platform import start_web_platform

    platform = start_web_platform(tmp_path_factory.mktemp("web"))
    try:
        yield platform
    finally:
        platform.processes.stop_all()
