"""Where a model family comes from: the platform's own, a team's project folder, or an installed package.

A family is named in `project.yaml` (`model.family`) in one of three forms:

- a built-in name (`sasrec`, `gru4rec` for next-item; `mlp` for engagement);
- `<file>.py:<Class>`: a class in a file of the project's folder (`models.py:MyRanker`), resolved
  against the folder, so a team brings a model without touching the platform's code;
- an entry point name in the group `algo_platform.models` of an installed package (the way a team's
  model reaches a trainer image on Kubernetes).

The class must subclass the task type's interface (`NextItemModel` or `EngagementModel`); anything
else is refused with a `ContractViolation` naming the rule.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

ENTRY_POINT_GROUP = "algo_platform.models"
# A trainer's exit status when the model breaks the task contract: the launching step fails without
# retries (EX_DATAERR: the input, here the model, is wrong; running it again cannot help).
CONTRACT_EXIT_CODE = 65


class ContractViolation(ValueError):
    """A model or task output that breaks the task contract; the message names the rule."""

    def __init__(self, rule: str, detail: str):
        super().__init__(f"task contract, rule {rule!r}: {detail}")
        self.rule = rule


def is_file_spec(spec: str) -> bool:
    return ":" in spec and spec.split(":", 1)[0].endswith(".py")


def family_source(spec: str, builtin: tuple[str, ...] | dict) -> str:
    """Where a family's code comes from, as a registered version's `source` tag says it."""
    if is_file_spec(spec):
        return f"project file {spec}"
    return "built-in" if spec in builtin else f"entry point {spec}"


def project_file_spec(spec: str, folder: Path) -> str:
    """`models.py:MyRanker` of a project folder as an absolute spec the trainer can load; other specs
    unchanged. The file must lie inside the folder once links are resolved: a relative path without
    `..`, never an absolute one (the project file is the only place a family comes from, and it may
    only name the project's own code)."""
    if not is_file_spec(spec):
        return spec
    file, name = spec.split(":", 1)
    root = folder.resolve()
    path = (folder / file).resolve()
    outside = Path(file).is_absolute() or ".." in Path(file).parts or not path.is_relative_to(root)
    if outside:
        raise ContractViolation(
            "family resolves", f"{spec}: a team's model file must be a path inside the project folder {folder.name}/"
        )
    return f"{path}:{name}"


def _class_from_file(spec: str) -> type:
    file, name = spec.split(":", 1)
    path = Path(file)
    if not path.is_file():
        raise ContractViolation("family resolves", f"{spec}: no such file {path}")
    module_name = f"algo_platform_team_models.{path.parent.name}.{path.stem}"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(path):
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise ContractViolation("family resolves", f"{spec}: {path.name} defines no {name!r}")
    return getattr(module, name)


def _class_from_entry_point(name: str) -> type | None:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    return next(iter(found)).load() if found else None


def resolve_family(spec: str, builtin: dict[str, type], interface: type) -> type:
    """The class a family spec names, checked against `interface`."""
    if spec in builtin:
        return builtin[spec]
    cls = _class_from_file(spec) if is_file_spec(spec) else _class_from_entry_point(spec)
    if cls is None:
        raise ContractViolation(
            "family resolves",
            f"model family {spec!r} is not built in ({', '.join(builtin)}), not a <file>.py:<Class> of the project "
            f"folder and not an entry point of group {ENTRY_POINT_GROUP!r} of an installed package",
        )
    if not (isinstance(cls, type) and issubclass(cls, interface)):
        raise ContractViolation(
            "implements the interface",
            f"{spec} is {cls!r}, not a subclass of {interface.__module__}.{interface.__name__}",
        )
    return cls
