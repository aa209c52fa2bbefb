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
    readers = sorted(set(_environment_readers()))
    assert readers == [], (
        "environment variables read outside core/environment.py (use environment.read):\n" + "\n".join(readers)
    )
    assert configuration_table() in (REPO / "docs" / "configuration.md").read_text(), (
        "docs/configuration.md's table is stale: paste `python -m algo_platform.core.environment`"
    )


# Variables other programs own, read where they are used: torchrun's ranks, Kubernetes' pod name,
# Spark's driver address.
OTHER_PROGRAMS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "HOSTNAME", "SPARK_DRIVER_POD_IP"}
# The MLflow URIs the tracking resource puts back after MLflow itself wrote them into os.environ.
RESTORES_MLFLOW = "algo_platform/resources/tracking.py"


def _environment_readers():
    """`module:line` of every read of a variable (`os.environ.get`, `os.getenv`, `os.environ[...]`,
    `in os.environ`) outside core/environment.py, other programs' variables aside."""
    import ast

    def is_environ(node):
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    for source in (REPO / "algo_platform").rglob("*.py"):
        relative = source.relative_to(REPO).as_posix()
        if relative in ("algo_platform/core/environment.py", RESTORES_MLFLOW):
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            key = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if (node.func.attr == "get" and is_environ(node.func.value)) or node.func.attr == "getenv":
                    key = node.args[0]
            elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
                key = node.slice
            elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
                key = node.left
            if key is not None and not (isinstance(key, ast.Constant) and key.value in OTHER_PROGRAMS):
                yield f"{relative}:{node.lineno}"
