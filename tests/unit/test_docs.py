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
