"""Which code produced a model: recorded with every registered version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from algo_platform import __version__
from algo_platform.core import environment


def code_version() -> str:
    """What produced a model: ALGO_PLATFORM_CODE_VERSION (set when an image is built), else the
    git commit of this checkout, else the package version."""
    configured = environment.read("ALGO_PLATFORM_CODE_VERSION")
    if configured:
        return configured
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__
