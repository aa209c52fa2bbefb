"""The docs site builds with mkdocs in strict mode (a broken link or a page missing from the nav
fails it), and the README stays a page of quick start and map."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_docs_build_strictly_and_every_page_is_in_the_readmes_map(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    readme = (REPO / "README.md").read_text()
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md") if p.name != "index.md")
    assert all(f"(docs/{page})" in readme for page in pages), "a docs page the README's map does not list"
    assert len(readme.splitlines()) < 120


def test_every_environment_variable_read_is_declared_and_the_configuration_table_is_generated():
    import re

    from algo_platform.core.environment import DECLARED, configuration_table

    read = set()
    for source in (REPO / "algo_platform").rglob("*.py"):
        read |= set(re.findall(r'"(ALGO_PLATFORM_[A-Z0-9_]+)"', source.read_text()))
    assert read - DECLARED == set(), "variables read but not declared in core/environment.py"
    assert {name for name in DECLARED if name.startswith("ALGO_PLATFORM_")} - read == set(), "declared, never read"
    assert configuration_table() in (REPO / "docs" / "configuration.md").read_text(), (
        "docs/configuration.md's table is stale: paste `python -m algo_platform.core.environment`"
    )
