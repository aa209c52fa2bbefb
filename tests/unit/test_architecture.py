"""The layering of algo_platform, declared once in `algo_platform.LAYERS`, held for every import.

Static: the source is parsed, nothing is imported, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import algo_platform
from algo_platform import LAYERS

PACKAGE = Path(algo_platform.__file__).parent
# Layers that may import dagster: the Dagster side and the applications on top of it.
DAGSTER_LAYERS = {"resources", "assets", "jobs", "definitions", "pipeline", "web", "cli"}
# The Dagster side as the project was specified: these packages exist and hold it.
SPECIFIED_PACKAGES = ("assets", "jobs", "resources")
# The one module at the top of the package: a project's Definitions (Dagster's own name for it).
ROOT_MODULES = {"definitions"}
# Dagster's private API, where no public one exists, with the reason. Nothing else may import it.
PRIVATE_DAGSTER = {
    "web.visibility": "scopes the webserver's workspace per user: CurrentWorkspace is what a request reads",
    "web.targets": "CompoundID decodes the ids the UI sends for partitions and states",
    "web.server": "WorkspaceRequestContext and dagster_webserver.cli: the webserver is wrapped, not forked",
    "jobs.backfill": "PartitionBackfill: a backfill that re-executes only the failed ranges of another",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the code base imports absolutely"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str | None:
    """The layer of `algo_platform.<layer>...`; None for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _internal(module: str) -> str | None:
    """The module of algo_platform an import names (`from a.b import c` may name a module or an object)."""
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


def test_every_package_is_a_declared_layer():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} | ROOT_MODULES
    assert packages == set(LAYERS), (
        f"packages not in algo_platform.LAYERS: {sorted(packages - set(LAYERS))}; "
        f"layers without a package: {sorted(set(LAYERS) - packages)}"
    )
    assert all((PACKAGE / name / "__init__.py").is_file() for name in SPECIFIED_PACKAGES)
    stray = sorted(path.stem for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert set(stray) <= ROOT_MODULES, (
        f"modules outside every layer (move them into the package of their role): {stray}"
    )


def test_no_import_points_up_the_layers():
    upward = []
    for module, path in MODULES.items():
        layer = _layer(module)
        for name in _imports(path):
            if not name.startswith("algo_platform"):
                continue
            target = _layer(_internal(name) or "algo_platform")
            if layer is None:
                assert target is None, f"the package root imports {name}: it must import no layer"
            elif target is not None and LAYERS.index(target) > LAYERS.index(layer):
                upward.append(f"{module} -> {name}")
    assert upward == [], "imports against algo_platform.LAYERS:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_modules():
    graph = {
        module: {target for name in _imports(path) if (target := _internal(name)) and target != module}
        for module, path in MODULES.items()
    }
    # Importing `a.b.c` runs `a.b` first: a package's __init__ is part of every import below it.
    done: set[str] = set()

    def visit(module: str, stack: list[str]) -> None:
        if module in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(module) :], module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*stack, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_only_the_dagster_layers_import_dagster():
    found = []
    for module, path in MODULES.items():
        if _layer(module) in DAGSTER_LAYERS:
            continue
        for name in _imports(path):
            root = name.split(".")[0]
            if root.startswith("dagster") and root != "dagster_pipes":
                found.append(f"{module} -> {name}")
    assert found == [], (
        "dagster outside the Dagster side, web and cli (engines and the trainer speak dagster_pipes):\n"
        + "\n".join(sorted(found))
    )


def test_private_dagster_api_only_where_no_public_one_exists():
    found = []
    for module, path in MODULES.items():
        short = module.removeprefix("algo_platform.")
        private = sorted(name for name in _imports(path) if name.startswith(("dagster._", "dagster_shared")))
        if private and short not in PRIVATE_DAGSTER:
            found.append(f"{short}: {private}")
    assert found == [], "Dagster's private API (use a public one, or list it here with the reason):\n" + "\n".join(
        found
    )


# The folder names of the storage layout (algo_platform/core/layout.py); a path segment spelled
# with one of them anywhere else is a second copy of the layout.
LAYOUT_SEGMENTS = {"projects", "landing", "quarantine", "imports", "models", "reports", "mlflow", "mlartifacts"}
LAYOUT_MODULE = "algo_platform.core.layout"


def _path_segments(node: ast.AST) -> list[str]:
    """String constants used as path segments: an operand of `/`, or a part of an f-string path."""
    found = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        found += [side.value for side in (node.left, node.right) if isinstance(side, ast.Constant)]
    elif isinstance(node, ast.JoinedStr):
        text = "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
        found += text.split("/")[1:-1] if text.count("/") >= 2 else []
    elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in {"joinpath", "storage_path", "path"}:
        found += [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
    return [segment for segment in found if isinstance(segment, str) and segment in LAYOUT_SEGMENTS]


def test_storage_paths_are_built_by_the_layout_only():
    found = []
    for module, path in MODULES.items():
        if module == LAYOUT_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            found += [f"{module}:{node.lineno} {segment!r}" for segment in _path_segments(node)]
    assert found == [], "storage paths built outside algo_platform/core/layout.py:\n" + "\n".join(found)
