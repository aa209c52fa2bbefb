"""Where everything lives under the storage root: the one place a storage path is spelled.

    <root>/projects/<project>/landing/events/<day>/       files as they arrive (upload, import, sensor)
    <root>/projects/<project>/quarantine/events/<day>/    files refused, with a reason beside each
    <root>/projects/<project>/quarantine/imports/<id>/    rows of a history import that have no day
    <root>/projects/<project>/imports/<id>.json           what each history import landed
    <root>/projects/<project>/partitioning.json           the grain its tables are stored in
    <root>/projects/<project>/<asset>/<partition>.<ext>  tables: the IO managers' layout (asset
                                                         keys start with the project)
    <root>/projects/<project>/data_profile_rollup.parquet  every partition's profile in one table (the data page)
    <root>/projects/<project>/models/<asset>/<day>/<training key>/   checkpoints and the model
    <root>/projects/<project>/reports/evaluation/<day>/<run id>.html
    <root>/mlflow/                                        the embedded MLflow store, without DAGSTER_HOME
    <root>/staging/<user hash>/<token>/                   uploads waiting for their preview's confirmation

The root is a local folder or any fsspec URL (s3://bucket/prefix); paths are strings or UPaths
usable by fsspec, pyarrow and polars. tests/unit/test_architecture.py fails on a storage path
built anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from upath import UPath

PROJECTS = "projects"


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


@dataclass(frozen=True)
class StorageLayout:
    """The storage root of the platform, shared by every project."""

    root: str

    @property
    def tables(self) -> str:
        """The IO managers' base path: `<tables>/<asset key>/...`, and asset keys start with the project."""
        return _join(self.root, PROJECTS)

    def project(self, name: str) -> ProjectLayout:
        return ProjectLayout(_join(self.root, PROJECTS, name))

    @property
    def mlflow(self) -> str:
        return _join(self.root, "mlflow")

    @property
    def staging(self) -> str:
        """Uploads being previewed (a local root only: Settings.staging_dir)."""
        return _join(self.root, "staging")

    @property
    def mlflow_artifacts(self) -> str:
        return _join(self.root, "mlflow", "artifacts")


@dataclass(frozen=True)
class ProjectLayout:
    """Everything of one project: landing zone, quarantine, imports, tables, models, reports."""

    root: str

    @property
    def landing_events(self) -> UPath:
        """The landing zone: one folder per day."""
        return UPath(self.root) / "landing" / "events"

    def landing_day(self, day: str) -> UPath:
        return self.landing_events / day

    def quarantine_day(self, day: str) -> UPath:
        return UPath(self.root) / "quarantine" / "events" / day

    @property
    def partitioning(self) -> UPath:
        """The partition grain the project's tables were stored in (a change of grain is refused)."""
        return UPath(self.root) / "partitioning.json"

    def stored_tables(self, asset: str) -> UPath:
        """Where the IO managers keep an asset's partitions (`<asset>/<partition>.parquet`)."""
        return UPath(self.root) / asset

    @property
    def profile_rollup(self) -> UPath:
        """The data page's table: every stored `data_profile` partition, with the stamps it was read at."""
        return UPath(self.root) / "data_profile_rollup.parquet"

    @property
    def imports(self) -> UPath:
        return UPath(self.root) / "imports"

    def import_manifest(self, import_id: str) -> UPath:
        return self.imports / f"{import_id}.json"

    def import_quarantine(self, import_id: str) -> UPath:
        return UPath(self.root) / "quarantine" / "imports" / import_id

    def table(self, asset: str, partition: str, extension: str = "parquet") -> str:
        """Where the IO managers store one partition of `asset` (Dagster's UPathIOManager layout)."""
        return _join(self.root, asset, f"{partition}.{extension}")

    def model_output(self, asset: str, day: str, training_key: str) -> str:
        """A training's checkpoints and model, keyed by what it trains: a retry resumes its checkpoint."""
        return _join(self.root, "models", asset, day, training_key)

    def evaluation_report(self, day: str, run_id: str) -> UPath:
        return UPath(self.root) / "reports" / "evaluation" / day / f"{run_id}.html"
