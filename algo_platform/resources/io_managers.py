"""IO managers on Dagster's UPathIOManager: Parquet for tables, JSON for small records.

Both write under `<base>/<asset key>/<partition>.<ext>` on any fsspec filesystem; asset keys start
with the project, so a project's tables are `<storage>/projects/<project>/<asset>/<day>.parquet`.
An input annotated as `UPath` or `StoredDays`, or with `AS_PATH` metadata, receives the stored
file's path instead of its contents, so a step that reads with polars or hands data to another
process (the trainer) passes a path, not a copy; one annotated as `pyarrow.Table` receives the
Arrow table as read, without the conversion to pandas. A step that wrote its table to a file
itself returns a `StagedParquet`, which is moved into place.
"""

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.atomic import stored_parts, write_atomically, write_streamed_atomically
from algo_platform.resources.partitions import compact_days, project_partitions, require_run_day
from algo_platform.resources.store_outage import store_outage_as_failure

# Input metadata for steps that read the stored file themselves (cleaning, features: polars reads
# it, so no other copy of the day is held): they get its path (`local_file` makes it local).
AS_PATH = {"load_as": "path"}


def _load_as(context: dg.InputContext) -> str | None:
    return (context.definition_metadata or {}).get("load_as")


def _as_arrow(context: dg.InputContext) -> bool:
    return _annotated_as(context, pa.Table)


class StoredDays:
    """Annotation for an input that receives the stored file's path instead of its contents: a
    UPath for a one-day run, {day: UPath} for a range (asset checks take no input metadata)."""


dg.make_python_type_usable_as_dagster_type(
    StoredDays,
    dg.DagsterType(
        type_check_fn=lambda _, value: isinstance(value, UPath | dict),
        name="StoredDays",
        description="a stored table's path, or one per day",
        typing_type=StoredDays,
    ),
)


def _as_path(context: dg.InputContext) -> bool:
    return _annotated_as(context, UPath) or _annotated_as(context, StoredDays) or _load_as(context) == "path"


@dataclass(frozen=True)
class StagedParquet:
    """A table a step wrote to a Parquet file of its own (a day too large to hand over in memory):
    the IO manager moves it into place, as it writes any other table."""

    path: Path
    num_rows: int
    schema: pa.Schema

    @staticmethod
    def scratch(name: str) -> Path:
        """Where a step writes a table it stages: `name` in a new folder of the machine's temp space."""
        return Path(tempfile.mkdtemp(prefix="algo-platform-")) / name

    @staticmethod
    def discard(path: Path) -> None:
        """A staged file the step will not hand over (it failed), and its folder."""
        shutil.rmtree(path.parent, ignore_errors=True)

    @classmethod
    def written(cls, path: Path) -> "StagedParquet":
        """The file at `path`, which its writer has closed (rows and schema are read now: the file moves)."""
        metadata = pq.read_metadata(path)
        return cls(path, metadata.num_rows, metadata.schema.to_arrow_schema())


@contextmanager
def local_file(path: UPath) -> Iterator[Path]:
    """A stored file as a path on this machine: the file itself on local storage, else a
    temporary copy (polars and the large-day cleaning read local files), removed afterwards."""
    if path.protocol in ("", "file", "local"):
        yield Path(path.path)
        return
    with tempfile.TemporaryDirectory(prefix="algo-platform-") as folder:
        copy = Path(folder) / path.name
        with path.open("rb") as source, copy.open("wb") as target:
            shutil.copyfileobj(source, target, _COPY_CHUNK)
        yield copy


_COPY_CHUNK = 16 * 2**20


def _annotated_as(context: dg.InputContext, python_type: type) -> bool:
    return context.dagster_type is not None and context.dagster_type.typing_type is python_type


def read_table(path: UPath) -> pa.Table:
    """A Parquet file as Arrow, without keeping the decoder's buffers: Arrow's allocator would hold
    them for reuse (170 MiB at 10M events) while the step's pandas work allocates elsewhere.

    A folder is a table Spark wrote (a project on the Spark engine): its parts in row order."""
    parts = stored_parts(path)
    if not parts:
        return pa.table({})
    tables = []
    for part in parts:
        with part.open("rb") as file:
            tables.append(pq.read_table(file))
    pa.default_memory_pool().release_unused()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


class ObjectStoreIOManager(dg.UPathIOManager):
    """A UPathIOManager whose step, when the store stops answering, fails with a message saying so."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        with store_outage_as_failure(f"writing {context.asset_key.to_user_string()}", writing=True):
            return self.write_output(context, obj)

    def write_output(self, context: dg.OutputContext, obj: Any) -> None:
        return super().handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        with store_outage_as_failure(f"reading {context.asset_key.to_user_string()}", writing=False):
            return super().load_input(context)


# Rows of a Parquet row group the platform writes (training_sequences: users).
ROWS_PER_GROUP = 65_536


class ParquetIOManager(ObjectStoreIOManager):
    extension = ".parquet"

    def dump_to_path(
        self, context: dg.OutputContext, obj: pd.DataFrame | pa.Table | StagedParquet, path: UPath
    ) -> None:
        if isinstance(obj, StagedParquet):
            _move_into_place(obj, path)
            return
        table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
        # Streamed to the file: no in-memory copy of the encoded Parquet. Row groups of a bounded size,
        # so a reader can take the file a group at a time (the trainer's --stream-row-groups).
        write_streamed_atomically(
            path, lambda file: pq.write_table(table, file, compression="zstd", row_group_size=ROWS_PER_GROUP)
        )

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame | pa.Table | UPath:
        if _as_path(context):
            if not path.exists():
                raise FileNotFoundError(
                    f"{path} does not exist; materialize {context.asset_key.to_user_string()} first"
                )
            return path
        table = read_table(path)
        # Steps that compute with Arrow (cleaning, features) ask for it and skip the pandas copy.
        return table if _as_arrow(context) else table.to_pandas()

    def load_partitions(self, context: dg.InputContext):
        """A window of partitions: one listing finds the ones that are missing, and names them all in
        one error before anything is read; the ones present are read in parallel."""
        keys = context.asset_partition_keys
        if len(keys) == 1 or _as_path(context):
            return super().load_partitions(context)
        paths = self._get_paths_for_partitions(context)
        folder = paths[keys[0]].parent
        present = {p.name for p in folder.iterdir()} if folder.exists() else set()
        missing = [key for key in keys if paths[key].name not in present]
        if missing:
            asset = context.asset_key.to_user_string()
            project = context.asset_key.path[0]
            needed_by = context.partition_key if context.has_partition_key else "this run"
            raise dg.Failure(
                description=(
                    f"{needed_by} needs {asset} for {len(keys)} partitions ({keys[0]}..{keys[-1]}); missing "
                    f"{len(missing)}: {compact_days(missing)}. Materialize them first ({project}_ingest_job; a "
                    "backfill over the range does it in one go); periods without events count once ingested, as "
                    "empty partitions."
                ),
                metadata={"missing_partitions": dg.MetadataValue.json(missing)},
            )
        with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
            tables = list(pool.map(lambda key: self.load_from_path(context, paths[key]), keys))
        return dict(zip(keys, tables, strict=True))

    def write_output(self, context: dg.OutputContext, obj: pd.DataFrame | pa.Table | dict) -> None:
        """A range run's output is a table per day: each day is written to its own file, as a
        one-day run writes it (each asset describes its days' rows itself)."""
        if not isinstance(obj, dict):
            return super().write_output(context, obj)
        paths = self._get_paths_for_partitions(context)
        if set(obj) != set(paths):
            raise dg.Failure(description=f"{context.asset_key.to_user_string()}: expected a table per day of the run")
        for day, path in paths.items():
            self.make_directory(path.parent)
            self.dump_to_path(context, obj[day], path)
        context.add_output_metadata({"days": len(obj), "dagster/column_schema": self._schema(next(iter(obj.values())))})
        return None

    @staticmethod
    def _schema(obj: pd.DataFrame | pa.Table | StagedParquet) -> dg.TableSchema:
        if isinstance(obj, pd.DataFrame):
            types = obj.dtypes.items()
        else:
            types = zip(obj.schema.names, obj.schema.types, strict=True)
        return dg.TableSchema(columns=[dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in types])

    def get_metadata(self, context: dg.OutputContext, obj: pd.DataFrame | pa.Table | StagedParquet) -> dict[str, Any]:
        rows = len(obj) if isinstance(obj, pd.DataFrame) else obj.num_rows
        return {"dagster/row_count": rows, "dagster/column_schema": self._schema(obj)}


def _move_into_place(staged: StagedParquet, path: UPath) -> None:
    """The staged file becomes the stored table: renamed when both are on one local file system,
    else copied in chunks (readers never see it half-written); the staged file is removed."""
    try:
        if path.protocol in ("", "file", "local"):
            target = Path(path.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staged.path, target)
                return
            except OSError as error:
                if error.errno != errno.EXDEV:  # another file system: copy instead
                    raise
        with staged.path.open("rb") as source:
            write_streamed_atomically(path, lambda file: shutil.copyfileobj(source, file, _COPY_CHUNK))
    finally:
        staged.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the step's scratch folder, once empty
            staged.path.parent.rmdir()


class JsonIOManager(ObjectStoreIOManager):
    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: dict, path: UPath) -> None:
        data = json.dumps(obj, indent=2, default=str).encode()
        write_atomically(path, data)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> dict:
        return json.loads(path.read_text())


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """Tables as Parquet under `base_path` (a folder or fsspec URL)."""

    base_path: str
    partitions_start: str  # the project's first day
    partition: str = "day"  # its grain: day, week or month

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        # Every stored table is one day: a run without a valid day stops here, before any step works.
        require_run_day(context.dagster_run, project_partitions(self.partitions_start, self.partition))
        return ParquetIOManager(base_path=UPath(self.base_path))


class JsonIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """Small records (model descriptors) as JSON under `base_path`."""

    base_path: str
    partitions_start: str
    partition: str = "day"

    def create_io_manager(self, context: dg.InitResourceContext) -> JsonIOManager:
        require_run_day(context.dagster_run, project_partitions(self.partitions_start, self.partition))
        return JsonIOManager(base_path=UPath(self.base_path))
