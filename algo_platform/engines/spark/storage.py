"""Where the Spark job reads and writes its tables.

On a file system (a local disk, or a volume mounted on the driver and every executor) Spark's own
Parquet reader and writer do it. On an object store (`s3://bucket/prefix`) they would need the s3a
connector (hadoop-aws and the AWS SDK) in every JVM; instead the job reads and writes through a
Spark Python data source (`StoredParquet`, Spark's own extension API) that opens the files with
fsspec, as every other step of the platform does: one set of credentials and endpoint settings
(the `AWS_*` environment), the same client, and nothing to add to Spark's classpath.

A table Spark writes is a folder of part files. On an object store a folder cannot be renamed in
one step, so a write ends with a manifest (`_parts.json`, one PUT, which S3 shows whole or not at
all) naming the parts of the new table; readers read the parts it names. Until the manifest is
replaced, readers see the previous table whole; parts of an interrupted write are never named.
"""

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    InputPartition,
    WriterCommitMessage,
)
from pyspark.sql.types import StructType
from upath import UPath

from algo_platform.core.atomic import PARTS_MANIFEST, stored_parts

FORMAT = "algo_platform_parquet"
# Rows per Arrow batch handed to Spark: a few MiB of events, well inside one Python worker.
BATCH_ROWS = 64 * 1024
# Rows per read task and per row group written (pyarrow's default row group): fewer, larger tasks,
# as Spark's own Parquet reader makes, instead of one per Arrow batch Spark hands a writer.
ROWS_PER_TASK = 1024 * 1024


def on_object_store(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def read(spark: SparkSession, path: str) -> DataFrame:
    """The stored table at `path` (a Parquet file, or a folder of Spark's part files)."""
    if not on_object_store(path):
        return spark.read.parquet(path)
    return read_through_data_source(spark, path)


def write(frame: DataFrame, path: str) -> None:
    """`frame` as the stored table at `path`; a reader sees the previous table or this one, whole."""
    if not on_object_store(path):
        _write_on_file_system(frame, path)
        return
    write_through_data_source(frame, path)


def read_through_data_source(spark: SparkSession, path: str) -> DataFrame:
    """Through `StoredParquet`, which `engines.spark.session` registers."""
    return spark.read.format(FORMAT).load(path)


def write_through_data_source(frame: DataFrame, path: str) -> None:
    frame.write.format(FORMAT).mode("overwrite").save(path)


def _write_on_file_system(frame: DataFrame, path: str) -> None:
    """Spark's folder of part files, written beside the target and renamed into place."""
    target = Path(path)
    staging = target.with_name(f".{target.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    frame.write.parquet(str(staging), compression="zstd")
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.is_dir():
        target.rename(previous)
    elif target.exists():
        target.unlink()  # a day stored by the polars engine before the project moved to Spark
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def _plain(schema: pa.Schema) -> pa.Schema:
    """The schema Spark is given: dictionary-encoded text as its values (Spark has no dictionaries)."""
    return pa.schema(
        [field.with_type(field.type.value_type) if pa.types.is_dictionary(field.type) else field for field in schema],
        metadata=None,
    )


@dataclass(frozen=True)
class _RowGroups(InputPartition):
    file: str
    row_groups: tuple[int, ...]


class StoredParquet(DataSource):
    """A stored table as a Spark data source: read tasks of consecutive Parquet row groups (in file
    and row group order, so the DataFrame's partitions follow the table's row order), one part file
    per write task, and the manifest written by the driver once every task has written its part."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        from pyspark.sql.pandas.types import from_arrow_schema

        parts = stored_parts(UPath(self.options["path"]))
        if not parts:
            raise FileNotFoundError(f"{self.options['path']} holds no table (its manifest names no part)")
        with parts[0].open("rb") as file:
            return from_arrow_schema(_plain(pq.read_schema(file)), prefer_timestamp_ntz=False)

    def reader(self, schema: StructType) -> DataSourceReader:
        return _RowGroupReader(self.options["path"], schema)

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceArrowWriter:
        return _PartsWriter(self.options["path"], schema)


class _RowGroupReader(DataSourceReader):
    def __init__(self, path: str, schema: StructType):
        from pyspark.sql.pandas.types import to_arrow_schema

        self.path = path
        self.arrow_schema = to_arrow_schema(schema, timezone="UTC")

    def partitions(self) -> list[_RowGroups]:
        """Consecutive row groups of one file, up to ROWS_PER_TASK rows, in file order."""
        tasks = []
        for part in stored_parts(UPath(self.path)):
            with part.open("rb") as file:
                metadata = pq.ParquetFile(file).metadata
            group: list[int] = []
            rows = 0
            for index in range(metadata.num_row_groups):
                group_rows = metadata.row_group(index).num_rows
                if group and rows + group_rows > ROWS_PER_TASK:
                    tasks.append(_RowGroups(str(part), tuple(group)))
                    group, rows = [], 0
                group.append(index)
                rows += group_rows
            if group:
                tasks.append(_RowGroups(str(part), tuple(group)))
        return tasks

    def read(self, partition: _RowGroups) -> Iterator[pa.RecordBatch]:
        with UPath(partition.file).open("rb") as file:
            parquet = pq.ParquetFile(file)
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=list(partition.row_groups)):
                yield pa.Table.from_batches([batch]).cast(self.arrow_schema).to_batches()[0]


@dataclass(frozen=True)
class _WrittenPart(WriterCommitMessage):
    name: str
    rows: int


class _PartsWriter(DataSourceArrowWriter):
    """Each task writes its part into a staging folder beside the table; the driver moves the
    parts of the successful attempts into the table's folder, then writes the manifest naming them,
    then removes what the previous table and earlier failed writes left."""

    def __init__(self, path: str, schema: StructType):
        from pyspark.sql.pandas.types import to_arrow_schema

        self.path = path
        self.arrow_schema = to_arrow_schema(schema, timezone="UTC")
        self.job = uuid.uuid4().hex[:12]

    @property
    def staging(self) -> UPath:
        target = UPath(self.path)
        return target.parent / f".{target.name}.writing-{self.job}"

    def write(self, iterator: Iterator[pa.RecordBatch]) -> _WrittenPart:
        task = TaskContext.get()
        # The attempt in the name: a retried or speculative task never overwrites another's part.
        name = f"part-{task.partitionId():05d}-{self.job}-{task.attemptNumber()}.parquet"
        rows = 0
        with ExitStack() as open_files:
            writer, pending, pending_rows = None, [], 0
            for batch in iterator:
                if writer is None:  # an empty partition leaves no part
                    self.staging.mkdir(parents=True, exist_ok=True)  # a file system needs the folder
                    file = open_files.enter_context((self.staging / name).open("wb"))
                    writer = open_files.enter_context(pq.ParquetWriter(file, batch.schema, compression="zstd"))
                pending.append(batch)
                pending_rows += batch.num_rows
                rows += batch.num_rows
                if pending_rows >= ROWS_PER_TASK:
                    writer.write_table(pa.Table.from_batches(pending), row_group_size=ROWS_PER_TASK)
                    pending, pending_rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=ROWS_PER_TASK)
        return _WrittenPart(name if rows else "", rows)

    def commit(self, messages: list[_WrittenPart | None]) -> None:
        target, staging = UPath(self.path), self.staging
        names = sorted(message.name for message in messages if message is not None and message.name)
        if not names:  # no rows at all: the table is one empty part with the job's schema
            names = [self._write_empty_part()]
        if target.exists() and not target.is_dir():
            target.unlink()  # a day stored by the polars engine before the project moved to Spark
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            (staging / name).fs.mv((staging / name).path, (target / name).path)
        (target / PARTS_MANIFEST).write_text(json.dumps({"parts": names, "rows": sum(m.rows for m in messages if m)}))
        kept = {*names, PARTS_MANIFEST}
        for stale in [p for p in target.iterdir() if p.name not in kept]:
            stale.fs.rm(stale.path, recursive=True)
        # This job's staging folder, and any that an aborted or killed write of this table left
        # (a task still running when its job was aborted can finish its part afterwards).
        for folder in target.parent.iterdir():
            if folder.name.startswith(f".{target.name}.writing-"):
                folder.fs.rm(folder.path, recursive=True)

    def abort(self, messages: list[_WrittenPart | None]) -> None:
        self._remove_staging()

    def _write_empty_part(self) -> str:
        name = f"part-00000-{self.job}.parquet"
        self.staging.mkdir(parents=True, exist_ok=True)
        with (self.staging / name).open("wb") as file:
            pq.write_table(self.arrow_schema.empty_table(), file, compression="zstd")
        return name

    def _remove_staging(self) -> None:
        staging = self.staging
        if staging.exists():
            staging.fs.rm(staging.path, recursive=True)
