"""Every environment variable the platform reads, declared once, and the one place it is read.

Each variable has its default and what it means. The platform's processes, the web server, the CLI
and the trainer (which runs in its own image, without the platform's settings) all read their
variables through `read`/`read_list`, which refuse a name not declared here. `docs/configuration.md`'s
table is `configuration_table()` (a test keeps them equal, and fails on a variable read anywhere else):
`python -m algo_platform.core.environment` prints it. Variables other programs own (torchrun's `RANK`,
Kubernetes' `HOSTNAME`, Spark's) are read where they are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    meaning: str
    who: str = "the platform"  # who reads it: the platform's processes, the web server, or the trainer


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "DAGSTER_HOME",
        "`./dagster_home` (set by `make`)",
        "instance: SQLite storage, run and pool limits in `dagster.yaml`",
    ),
    Variable("ALGO_PLATFORM_STORAGE", "`./storage`", "storage root: a folder or an fsspec URL (`s3://bucket/prefix`)"),
    Variable(
        "ALGO_PLATFORM_ENV",
        "`local`",
        "`local` or `kubernetes`; picks the resources in `algo_platform/resources/environment.py`",
    ),
    Variable("ALGO_PLATFORM_PROJECTS", "`./projects`", "where the CLI and the code locations find project folders"),
    Variable("ALGO_PLATFORM_SENSOR_INTERVAL_SECONDS", "`30`", "minimum time between landing-zone sensor ticks"),
    Variable("ALGO_PLATFORM_LANDING_SETTLE_SECONDS", "`10`", "a landing file is read once unmodified this long"),
    Variable("MLFLOW_TRACKING_URI", "(none: SQLite beside the instance)", "an MLflow tracking server"),
    Variable("ALGO_PLATFORM_TRAINER_IMAGE", "`algo-platform-trainer:latest`", "the trainer pods' image on Kubernetes"),
    Variable(
        "ALGO_PLATFORM_SPARK_IMAGE", "`algo-platform-spark:latest`", "Spark drivers' and executors' image on Kubernetes"
    ),
    Variable("ALGO_PLATFORM_K8S_NAMESPACE", "`algo-platform`", "namespace of the trainer pods and Spark applications"),
    Variable("ALGO_PLATFORM_FLEET", "`deploy/gpu-fleet.yaml`", "the GPU fleet file: teams' queues and quotas"),
    Variable("ALGO_PLATFORM_CODE_VERSION", "(the package's version and git commit)", "the assets' code version"),
    Variable(
        "ALGO_PLATFORM_IMPORT_MAX_COMPRESSION_RATIO", "`200`", "how far a compressed history file may expand on import"
    ),
    Variable(
        "ALGO_PLATFORM_ALLOWED_HOSTS",
        "(none)",
        "host names the web UI answers to besides loopback and `--host`, comma-separated",
        "web",
    ),
    Variable(
        "ALGO_PLATFORM_ALLOWED_ORIGINS",
        "(none)",
        "extra origins allowed to send writes to the UI, comma-separated",
        "web",
    ),
    Variable(
        "ALGO_PLATFORM_SESSION_SECRET",
        "(none: `webserver` refuses to start; `dev` makes one per run)",
        "signs session cookies; 32+ characters, from your secret store",
        "web",
    ),
    Variable(
        "ALGO_PLATFORM_AUTH",
        "`local`",
        "`local`: the platform's users and passwords; `proxy`: an identity-aware proxy signs people in",
        "web",
    ),
    Variable(
        "ALGO_PLATFORM_TRUSTED_PROXIES",
        "(none)",
        "proxy mode: addresses/CIDRs whose identity headers are believed, comma-separated",
        "web",
    ),
    Variable("ALGO_PLATFORM_PROXY_USER_HEADER", "`X-Forwarded-User`", "proxy mode: the header naming the user", "web"),
    Variable(
        "ALGO_PLATFORM_PROXY_GROUPS_HEADER",
        "`X-Forwarded-Groups`",
        "proxy mode: the header listing the user's groups",
        "web",
    ),
    Variable(
        "ALGO_PLATFORM_SECURE_COOKIES", "off", "`1`: session cookies only over HTTPS (set behind a TLS ingress)", "web"
    ),
    Variable("ALGO_PLATFORM_UPLOAD_MAX_MB", "`2048`", "the largest upload body the web UI takes", "web"),
    Variable("ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB", "`1024`", "the most a compressed upload may expand to", "web"),
    Variable("ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO", "`100`", "how far a compressed upload may expand", "web"),
    Variable("ALGO_PLATFORM_USER", "(none)", "`upload --server`: who signs in", "CLI"),
    Variable("ALGO_PLATFORM_PASSWORD", "(none: asked for)", "`upload --server`: their password", "CLI"),
    Variable(
        "ALGO_PLATFORM_IDLE_GPU_PERCENT",
        "`5` (set from `compute.idle_gpu_percent`)",
        "a trainer whose GPUs stay under this utilisation ...",
        "trainer",
    ),
    Variable(
        "ALGO_PLATFORM_IDLE_MINUTES",
        "`30` (set from `compute.idle_minutes`)",
        "... this long stops after a checkpoint",
        "trainer",
    ),
    Variable(
        "ALGO_PLATFORM_GPU_SAMPLE_SECONDS", "`1`", "how often the trainer samples GPU utilisation (NVML)", "trainer"
    ),
    Variable(
        "ALGO_PLATFORM_FAKE_GPU_UTILISATION",
        "(none: NVML)",
        "a constant utilisation in place of NVML's (the tests use it)",
        "trainer",
    ),
    Variable(
        "ALGO_PLATFORM_LAUNCHER_PID",
        "(set by the local launcher)",
        "the run worker's pid: a trainer whose launcher died stops",
        "trainer",
    ),
    Variable(
        "ALGO_PLATFORM_LAUNCHER_HEARTBEAT_FILE",
        "(set in trainer pods)",
        "the pod annotation file the launcher's heartbeat is read from",
        "trainer",
    ),
    Variable(
        "ALGO_PLATFORM_LAUNCHER_TIMEOUT_SECONDS",
        "(set in trainer pods)",
        "a heartbeat older than this stops the trainer",
        "trainer",
    ),
)

DECLARED = {variable.name for variable in VARIABLES}


def read(name: str, default: str | None = None) -> str | None:
    """The variable's value, or `default` where it is unset; a name not declared above is a bug."""
    if name not in DECLARED:
        raise KeyError(f"{name} is not declared in algo_platform/core/environment.py")
    return os.environ.get(name, default)


def read_list(name: str) -> list[str]:
    """A comma-separated variable's items, blanks dropped."""
    return [item.strip() for item in (read(name) or "").split(",") if item.strip()]


def hidden_from_programs() -> dict[str, str]:
    """The web server's and the CLI's variables that are set here (the session secret, a CLI user's
    password), each blanked: a trainer or a team's program started from this process inherits the
    rest of its environment (storage credentials included) but never these."""
    return {v.name: "" for v in VARIABLES if v.who in ("web", "CLI") and v.name in os.environ}


def configuration_table() -> str:
    """The Markdown table of docs/configuration.md."""
    rows = ["| variable | default | read by | meaning |", "|---|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default} | {v.who} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(configuration_table(), end="")
