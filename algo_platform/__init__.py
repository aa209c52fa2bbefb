"""algo-platform: Dagster assets, checks and a PyTorch trainer for user-behaviour data."""

import os
import subprocess
from pathlib import Path

__version__ = "0.1.0"

# polars allocates with jemalloc, which keeps freed pages for reuse. A cleaning step frees large
# temporaries (raw columns, sort keys, hash tables) as it goes, and kept pages still count against
# the machine's or the pod's memory: a background thread returns them within 100 ms instead.
# jemalloc reads this once, when polars loads, so it is set before anything here imports polars;
# a value set by the operator wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0")


def code_version() -> str:
    """What produced a model: ALGO_PLATFORM_CODE_VERSION (set when an image is built), else the
    git commit of this checkout, else the package version."""
    if os.environ.get("ALGO_PLATFORM_CODE_VERSION"):
        return os.environ["ALGO_PLATFORM_CODE_VERSION"]
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
