"""Deprecated: `from algo_platform.definitions import load_project_definitions` instead.

Projects scaffolded before the Dagster side moved to the top of the package import this; it still
works, with a DeprecationWarning naming the new import.
"""

import warnings

from algo_platform.definitions import build_project_definitions, load_project_definitions

warnings.warn(
    "algo_platform.pipeline.location is deprecated: in your project's definitions.py, import "
    "load_project_definitions from algo_platform.definitions",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["build_project_definitions", "load_project_definitions"]
