"""`algo-platform import`: a history file of any size, split by event day into the landing zone.

The file is read in batches (bounded memory), each batch mapped onto the canonical columns and
the project's extra columns, and spilled to a fixed number of day buckets on local disk (Arrow
IPC, written as it comes). Each bucket is then read back alone, split into one Parquet file per
day, and landed with an atomic rename: a reader sees a day's file whole or not at all.

Identity: an import is the file's bytes plus the mapping and the declared extra columns. Importing
the same again finds its manifest and changes nothing; a crash leaves a manifest that is not
complete, and the same import picks up where it stopped (the day files it writes are byte for
byte the same). The same bytes with another mapping are a new import: its files replace the
earlier import's, which move to quarantine (nothing is deleted).

Rows without a usable timestamp cannot be placed on a day; they go to quarantine as one file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.atomic import write_atomically, write_streamed_atomically
from algo_platform.core.calendar import ProjectCalendar
from algo_platform.core.layout import ProjectLayout
from algo_platform.core.schema import CANONICAL_COLUMNS
from algo_platform.ingest.canonical import event_schema, to_canonical
from algo_platform.ingest.folders import LinkedLandingFolder, refuse_linked_folders, writable_landing_dir
from algo_platform.ingest.formats import BATCH_BYTES, BadEventFile, file_format, read_batches
from algo_platform.ingest.quarantine import REASON_SUFFIX, quarantine_file

# The canonical Arrow table of a narrow text file takes about this many times its bytes (generated
# event ids are strings), and splitting a bucket by day holds it twice (as read, and sorted).
ARROW_PER_FILE_BYTE = 4
SPLIT_COPIES = 2
MAX_BUCKETS = 512


class ImportRefused(Exception):
    """The import cannot go ahead; nothing was landed. The message names the file, the problem, the fix."""


@dataclass
class ImportResult:
    import_id: str
    source: str
    rows_per_day: dict[str, int]
    manifest: str
    already_imported: bool = False
    rows_without_time: int = 0
    quarantined: str | None = None
    superseded: list[str] = field(default_factory=list)  # earlier imports of these bytes, now in quarantine
    ignored_columns: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(self.rows_per_day.values())

    @property
    def first_day(self) -> str | None:
        return min(self.rows_per_day, default=None)

    @property
    def last_day(self) -> str | None:
        return max(self.rows_per_day, default=None)


def file_digest(path: UPath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def import_identity(digest: str, mapping: Mapping[str, str], extra_columns: Mapping[str, str]) -> str:
    """Same bytes, same mapping, same declared columns: the same import."""
    key = json.dumps({"sha256": digest, "mapping": dict(mapping), "extra": dict(extra_columns)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _days_of(ts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Days since 1970-01-01 (UTC) of each timestamp."""
    return pc.divide(ts.cast(pa.int64()), 86_400_000).cast(pa.int32())


def _iso(day_number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))).isoformat()


@dataclass
class _Spill:
    """Pass one: canonical rows in day buckets on local disk, counted by day."""

    folder: Path
    buckets: int
    schema: pa.Schema
    writers: dict[int, ipc.RecordBatchStreamWriter] = field(default_factory=dict)
    rows_per_day: Counter = field(default_factory=Counter)
    # Rows without a timestamp are spilled too (a file of mostly such rows must not fill memory).
    without_time: int = 0
    without_time_writer: ipc.RecordBatchStreamWriter | None = None

    @property
    def without_time_path(self) -> Path:
        return self.folder / "without-time.arrow"

    def add(self, table: pa.Table) -> None:
        has_time = pc.is_valid(table["ts"])
        if not pc.all(has_time).as_py():
            rows = table.filter(pc.invert(has_time))
            if self.without_time_writer is None:
                self.without_time_writer = ipc.new_stream(pa.OSFile(str(self.without_time_path), "wb"), self.schema)
            self.without_time_writer.write_table(rows)
            self.without_time += rows.num_rows
            table = table.filter(has_time)
        days = _days_of(table["ts"]).to_numpy(zero_copy_only=False)
        for day, count in zip(*np.unique(days, return_counts=True), strict=True):
            self.rows_per_day[int(day)] += int(count)
        bucket_of_row = days % self.buckets
        for bucket in np.unique(bucket_of_row):
            if bucket not in self.writers:
                sink = pa.OSFile(str(self.folder / f"bucket-{bucket}.arrow"), "wb")
                self.writers[bucket] = ipc.new_stream(sink, self.schema)
            self.writers[bucket].write_table(table.filter(pa.array(bucket_of_row == bucket)))

    def close(self) -> None:
        for writer in [*self.writers.values(), *filter(None, [self.without_time_writer])]:
            writer.close()

    def days_in_buckets(self) -> Iterator[tuple[int, pa.Table]]:
        """(day number, its rows in file order), one bucket in memory at a time."""
        for bucket in sorted(self.writers):
            path = self.folder / f"bucket-{bucket}.arrow"
            with pa.memory_map(str(path)) as source:
                table = ipc.open_stream(source).read_all()
            days = _days_of(table["ts"])
            order = pc.sort_indices(pa.table({"day": days}), sort_keys=[("day", "ascending")])  # stable
            table, days = table.take(order), days.take(order)
            values, counts = np.unique(days.to_numpy(zero_copy_only=False), return_counts=True)
            offset = 0
            for day, count in zip(values, counts, strict=True):
                yield int(day), table.slice(offset, int(count))
                offset += int(count)
            del table, days, order
            path.unlink()
            # Arrow's allocator keeps freed blocks for reuse; without this, memory grows with buckets.
            pa.default_memory_pool().release_unused()


def with_event_ids(table: pa.Table, mapping: Mapping[str, str], import_id: str, first_row: int) -> pa.Table:
    """Files without an event id get one from the import and the row's place in the file:
    the same row of the same import always has the same id."""
    if "event_id" in mapping or "event_id" in table.column_names:
        return table
    rows = pa.array(np.arange(first_row, first_row + table.num_rows)).cast(pa.string())
    return table.append_column("event_id", pc.binary_join_element_wise(pa.scalar(import_id), rows, "-"))


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _landed_name(source_name: str, import_id: str) -> str:
    stem = source_name.split(".", 1)[0][:80] or "import"
    return f"{stem}-{import_id}.parquet"


def _manifests(storage_root: str) -> list[dict]:
    folder = ProjectLayout(storage_root).imports
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in folder.iterdir() if p.name.endswith(".json")]


def completed_imports(storage_root: str) -> list[dict]:
    """The manifests of the imports that finished and were not replaced by a later one."""
    return [m for m in _manifests(storage_root) if m.get("status") == "complete"]


def _write_manifest(storage_root: str, manifest: dict) -> UPath:
    target = ProjectLayout(storage_root).import_manifest(manifest["import_id"])
    write_atomically(target, json.dumps(manifest, indent=2).encode())
    return target


def _supersede(storage_root: str, earlier: dict, by: str) -> None:
    """Move an earlier import's landed files to quarantine (copy, then delete): replaced, not lost."""
    error = BadEventFile(earlier["landed_name"], "superseded", f"replaced by import {by} of the same bytes")
    for day in earlier["rows_per_day"]:
        landed = ProjectLayout(storage_root).landing_day(day) / earlier["landed_name"]
        if landed.exists():
            quarantine_file(storage_root, day, landed, landed.read_bytes(), error)
            landed.unlink()
    _write_manifest(storage_root, {**earlier, "status": "superseded", "superseded_by": by})


def _bucket_count(path: UPath, compression: str | None, memory_bytes: int) -> int:
    size = path.fs.size(path.path) * (8 if compression else 1)
    return max(1, min(MAX_BUCKETS, math.ceil(size * ARROW_PER_FILE_BYTE * SPLIT_COPIES / memory_bytes)))


def dates_refusal(
    name: str, rows_per_day: Mapping[str, int], partitions_start: str, project_file: str, today: dt.date | None = None
) -> str | None:
    """Why a file's days cannot be imported (rows before the project's first partition or after
    today), None when they can; `import --dry-run` says the same before anything is read twice."""
    early = sorted(day for day in rows_per_day if day < partitions_start)
    if early:
        rows = sum(rows_per_day[day] for day in early)
        calendar = ProjectCalendar(dt.date.fromisoformat(partitions_start), project_file)
        return (
            f"{name}: {rows:,} row(s) dated before the first partition, from {early[0]} to {early[-1]}. A few "
            f"stray rows (a cut last line, a timestamp in other units) are the file's to fix; a history that "
            f"starts earlier: {calendar.before_start(early[0])}"
        )
    today = today or dt.datetime.now(dt.UTC).date()
    future = sorted(day for day in rows_per_day if day > today.isoformat())
    if future:
        rows = sum(rows_per_day[day] for day in future)
        return (
            f"{name}: {rows:,} rows are dated after today ({today.isoformat()} UTC), up to {future[-1]}; "
            "check the timestamp column and its unit (seconds or milliseconds)"
        )
    return None


def import_events(
    source: str | Path,
    storage_root: str,
    mapping: Mapping[str, str],
    extra_columns: Mapping[str, str],
    partitions_start: str,
    project_file: str = "project.yaml",
    today: dt.date | None = None,
    memory_bytes: int = 512 << 20,
    batch_bytes: int = BATCH_BYTES,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> ImportResult:
    """Split `source` by event day into the landing zone. `progress(stage, done, total)` hears how
    far it is: stage "read" (rows so far, total unknown) after each batch, then "land" (days)."""
    report = progress or (lambda stage, done, total: None)
    path = UPath(source)
    if not path.is_file():
        raise ImportRefused(f"{source}: no such file; give the path or URL of a Parquet, CSV or JSONL file")
    try:
        _, compression = file_format(path.name)
    except BadEventFile as error:
        raise ImportRefused(str(error)) from None
    digest = file_digest(path)
    import_id = import_identity(digest, mapping, extra_columns)
    manifests = _manifests(storage_root)
    mine = next((m for m in manifests if m["import_id"] == import_id), None)
    if mine is not None and mine["status"] == "complete":
        return ImportResult(
            import_id,
            str(source),
            mine["rows_per_day"],
            str(ProjectLayout(storage_root).import_manifest(import_id)),
            True,
        )
    earlier = [
        m for m in manifests if m["sha256"] == digest and m["import_id"] != import_id and m["status"] == "complete"
    ]

    schema = event_schema(extra_columns)
    loaded = {*CANONICAL_COLUMNS, *mapping.values(), *extra_columns}
    ignored: list[str] = []
    with tempfile.TemporaryDirectory(prefix="algo-platform-import-") as scratch:
        spill = _Spill(Path(scratch), _bucket_count(path, compression, memory_bytes), schema)
        first_row = 0
        try:
            for batch in read_batches(path, batch_bytes):
                ignored += [c for c in batch.column_names if c not in loaded and c not in ignored]
                table = with_event_ids(batch, mapping, import_id, first_row)
                added = tuple(c for c in table.column_names if c not in batch.column_names)
                try:
                    spill.add(to_canonical(path.name, table, mapping, digest, extra_columns, added))
                except BadEventFile as error:
                    raise ImportRefused(
                        f"{error} (in rows {first_row + 1:,}..{first_row + batch.num_rows:,}); nothing was imported"
                    ) from None
                first_row += batch.num_rows
                report("read", first_row, None)
                del batch, table
                pa.default_memory_pool().release_unused()
        except BadEventFile as error:  # the reader's: a header or a size it refuses
            raise ImportRefused(f"{error}; nothing was imported") from None
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            message = str(error).splitlines()[0][:200]
            raise ImportRefused(
                f"{path.name}: cannot be read after row {first_row:,} ({message}); fix the file; nothing was imported"
            ) from None
        finally:
            spill.close()

        days = sorted(spill.rows_per_day)
        if not days and not spill.without_time:
            raise ImportRefused(f"{path.name}: no rows; nothing to import")
        rows_per_day = {_iso(d): spill.rows_per_day[d] for d in days}
        refusal = dates_refusal(path.name, rows_per_day, partitions_start, project_file, today)
        if refusal:
            raise ImportRefused(f"{refusal}; nothing was imported")
        landed_name = _landed_name(path.name, import_id)
        manifest = {
            "import_id": import_id,
            "source": str(source),
            "sha256": digest,
            "mapping": dict(mapping),
            "extra_columns": dict(extra_columns),
            "landed_name": landed_name,
            "rows_per_day": rows_per_day,
            "started": dt.datetime.now(dt.UTC).isoformat(),
            "status": "landing",
        }
        try:
            folders = {day: writable_landing_dir(storage_root, day) for day in rows_per_day}
            if spill.without_time:
                refuse_linked_folders(storage_root, ProjectLayout(storage_root).import_quarantine(import_id))
        except LinkedLandingFolder as error:
            raise ImportRefused(f"{source}: {error}; nothing was landed") from None
        manifest_path = _write_manifest(storage_root, manifest)
        for landed, (day_number, rows) in enumerate(spill.days_in_buckets(), start=1):
            day = _iso(day_number)
            target = folders[day] / landed_name
            # A rerun after a crash writes the same bytes; a file already in place is left alone.
            if not target.exists():
                write_atomically(target, _parquet_bytes(rows))
            report("land", landed, len(rows_per_day))

        quarantined = None
        if spill.without_time:
            quarantined = _quarantine_rows_without_time(
                storage_root, import_id, spill.without_time_path, spill.without_time
            )
    for other in earlier:
        _supersede(storage_root, other, import_id)
    without_time = spill.without_time
    _write_manifest(
        storage_root,
        {
            **manifest,
            "status": "complete",
            "finished": dt.datetime.now(dt.UTC).isoformat(),
            "rows_without_time": without_time,
        },
    )
    return ImportResult(
        import_id,
        str(source),
        rows_per_day,
        str(manifest_path),
        rows_without_time=without_time,
        quarantined=quarantined,
        superseded=[m["import_id"] for m in earlier],
        ignored_columns=tuple(ignored),
    )


def _quarantine_rows_without_time(storage_root: str, import_id: str, spilled: Path, rows: int) -> str:
    """The spilled rows as one Parquet file in quarantine, streamed a batch at a time."""
    folder = refuse_linked_folders(storage_root, ProjectLayout(storage_root).import_quarantine(import_id))
    target = folder / "rows-without-timestamp.parquet"

    def write(file) -> None:
        with pa.memory_map(str(spilled)) as source:
            reader = ipc.open_stream(source)
            with pq.ParquetWriter(file, reader.schema, compression="zstd") as parquet:
                for batch in reader:
                    parquet.write_batch(batch)

    write_streamed_atomically(target, write)
    reason = {
        "reason": "missing_ts",
        "detail": f"{rows:,} rows have no usable timestamp, so no day to land on",
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }
    write_atomically(folder / ("rows-without-timestamp.parquet" + REASON_SUFFIX), json.dumps(reason).encode())
    return str(target)
