"""The Layout page (docs/layout.md) names every package and module of algo_platform/, and nothing else."""

import re
from pathlib import Path

from algo_platform import LAYERS

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "algo_platform"


def layout_block() -> list[str]:
    page = (REPO / "docs" / "layout.md").read_text()
    return page.split("```\n", 2)[1].splitlines()


def described() -> dict[str, set[str]]:
    """Folder (relative to algo_platform/) -> the module names its lines mention."""
    folders: dict[str, set[str]] = {}
    stack: list[tuple[int, str]] = []
    current = None
    for line in layout_block():
        if re.match(r"^  \S+\.py\s", line):  # a module at the top of the package (definitions.py)
            current = None
            continue
        match = re.match(r"^( *)(\S+/)(?=\s|$)", line)
        if match:
            indent, name = len(match.group(1)), match.group(2).rstrip("/")
            stack = [(i, n) for i, n in stack if i < indent]
            stack.append((indent, name))
            inside = [n for _, n in stack]
            current = "/".join(inside[1:]) if inside[0] == "algo_platform" and len(inside) > 1 else None
            if current is not None:
                folders.setdefault(current, set())
        if current is not None:
            folders[current] |= set(re.findall(r"\b(\w+\.py)\b", line))
    return folders


def test_every_package_and_module_is_in_the_readme_layout():
    in_readme = described()
    in_tree = {
        str(init.parent.relative_to(PACKAGE)): {p.name for p in init.parent.glob("*.py") if p.name != "__init__.py"}
        for init in PACKAGE.glob("**/__init__.py")
        if init.parent != PACKAGE
    }
    assert sorted(in_readme) == sorted(in_tree), "README Layout's folders differ from algo_platform/'s packages"
    for folder, modules in in_tree.items():
        missing = modules - in_readme[folder]
        assert not missing, f"README Layout does not mention {sorted(missing)} in {folder}/"
        stale = in_readme[folder] - modules - {"__init__.py"}
        assert not stale, f"README Layout names {sorted(stale)} in {folder}/, which do not exist"


def test_the_readme_lists_the_layers_in_their_declared_order():
    top = [
        line.split()[0].rstrip("/").removesuffix(".py") for line in layout_block() if re.match(r"^  \S+(/|\.py)", line)
    ]
    assert top == list(LAYERS)
