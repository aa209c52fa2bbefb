"""The platform's settings: what differs between environments, read from environment variables
(through `core/environment.py`, where each is declared) by the code location's entry point, never
at import of an asset module.

`ALGO_PLATFORM_ENV` picks the environment (`local` or `kubernetes`); `ALGO_PLATFORM_STORAGE`
is the storage root (a local folder or any fsspec URL). What differs between teams (partition
start, window, schedule, model) is in each project's project.yaml, not here.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from algo_platform.core import environment
from algo_platform.core.layout import StorageLayout

Environment = Literal["local", "kubernetes"]
ENVIRONMENTS: tuple[Environment, ...] = ("local", "kubernetes")


@dataclass(frozen=True)
class Settings:
    env: Environment
    storage_root: str
    trainer_image: str = "algo-platform-trainer:latest"
    spark_image: str = "algo-platform-spark:latest"  # driver and executors of Spark projects
    k8s_namespace: str = "algo-platform"
    sensor_interval_seconds: int = 30
    # A landing file written in place is read once it has been unmodified this long.
    landing_settle_seconds: int = 10
    mlflow_tracking_uri: str = ""  # MLFLOW_TRACKING_URI: a tracking server; empty: embedded SQLite
    dagster_home: str = ""

    @property
    def _embedded_mlflow_dir(self) -> str:
        # Beside the Dagster instance when there is one, else under the storage root.
        return str(Path(self.dagster_home).resolve()) if self.dagster_home else self.layout.mlflow

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self._embedded_mlflow_dir}/mlflow.db"

    @property
    def artifact_location(self) -> str:
        """Where a new experiment keeps artifacts: a tracking server decides its own; with the embedded
        database they sit beside the models, on the object store when the storage root is one."""
        if self.mlflow_tracking_uri:
            return ""
        if "://" in self.storage_root:
            return self.layout.mlflow_artifacts
        return f"{self._embedded_mlflow_dir}/mlartifacts"

    @property
    def staging_dir(self) -> Path:
        """Uploads waiting for their preview to be confirmed: on this machine, outside every landing zone
        (beside the storage root when it is a folder, else beside the Dagster instance)."""
        if "://" not in self.storage_root:
            return Path(self.layout.staging)
        return Path(self.dagster_home or tempfile.gettempdir()) / "staging"

    @property
    def layout(self) -> StorageLayout:
        """Every path under the storage root (`algo_platform.core.layout`)."""
        return StorageLayout(self.storage_root)


def load_settings() -> Settings:
    env = environment.read("ALGO_PLATFORM_ENV", "local").strip().lower()
    if env not in ENVIRONMENTS:
        raise ValueError(f"ALGO_PLATFORM_ENV={env!r} is not a known environment; use one of {', '.join(ENVIRONMENTS)}")
    storage = environment.read("ALGO_PLATFORM_STORAGE") or str(Path.cwd() / "storage")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    return Settings(
        env=env,  # type: ignore[arg-type]
        storage_root=storage,
        trainer_image=environment.read("ALGO_PLATFORM_TRAINER_IMAGE", "algo-platform-trainer:latest"),
        spark_image=environment.read("ALGO_PLATFORM_SPARK_IMAGE", "algo-platform-spark:latest"),
        k8s_namespace=environment.read("ALGO_PLATFORM_K8S_NAMESPACE", "algo-platform"),
        sensor_interval_seconds=int(environment.read("ALGO_PLATFORM_SENSOR_INTERVAL_SECONDS", "30")),
        landing_settle_seconds=int(environment.read("ALGO_PLATFORM_LANDING_SETTLE_SECONDS", "10")),
        mlflow_tracking_uri=environment.read("MLFLOW_TRACKING_URI", ""),
        dagster_home=environment.read("DAGSTER_HOME", ""),
    )
