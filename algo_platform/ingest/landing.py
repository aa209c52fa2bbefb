"""The landing zone: where event files arrive and how a day's files become its raw events. How a
file is read is `formats.py`, how its columns become the platform's `canonical.py`, where a bad
one goes `quarantine.py`.

Layout under a project's storage root (`algo_platform.core.layout`):
    landing/events/<YYYY-MM-DD>/<file>                 files as uploaded (never modified)
    landing/events/<YYYY-MM-DD>/<file>.columns.json    optional column mapping written by upload
    quarantine/events/<YYYY-MM-DD>/<file>              copies of files that could not be used
    quarantine/events/<YYYY-MM-DD>/<file>.reason.json  why

Landing protocol: a file is complete when it appears under its final name. Writers create it
under a hidden name (starting with `.`, which every reader skips) and rename it into place; a
writer that cannot rename must leave the file unmodified for `ALGO_PLATFORM_LANDING_SETTLE_SECONDS`
(default 10) before the sensor reads it. A file that changes after it was ingested is ingested
again with its whole day.

Links are never followed: a symbolic link is quarantined as a link, its target unread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.layout import ProjectLayout
from algo_platform.core.schema import pandas_dtypes, with_low_cardinality_encoded
from algo_platform.ingest.canonical import raw_day_schema, to_canonical
from algo_platform.ingest.folders import is_local
from algo_platform.ingest.formats import BadEventFile, content_digest, parse_bytes
from algo_platform.ingest.quarantine import QuarantinedFile, quarantine_file

MAPPING_SUFFIX = ".columns.json"


@dataclass(frozen=True)
class LandedFile:
    """One entry of a landing folder, described without opening it (and never through a link)."""

    folder: UPath
    name: str
    size: int
    modified_ns: int  # last write
    landed_ns: int  # arrival: a rename into place sets ctime, so max(ctime, mtime)
    is_link: bool

    @property
    def path(self) -> UPath:
        # Built on demand: a sensor tick describes every file but opens none.
        return self.folder / self.name

    @property
    def signature(self) -> str:
        """Changes whenever the file's bytes may have changed."""
        return f"{self.size}:{self.modified_ns}"


def _is_data_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(MAPPING_SUFFIX)


def scan_folder(folder: UPath) -> list[LandedFile]:
    """Data files of a landing folder in arrival order (hidden temp files and sidecars skipped).

    Local folders are read with lstat, so a link is reported as a link and its target is never
    touched; object stores have no links."""
    entries: list[LandedFile] = []
    if is_local(folder):
        if os.path.islink(folder.path) or not os.path.isdir(folder.path):
            return []
        with os.scandir(folder.path) as listing:
            for entry in listing:
                if not _is_data_name(entry.name) or entry.is_dir(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
                entries.append(
                    LandedFile(
                        folder,
                        entry.name,
                        stat.st_size,
                        stat.st_mtime_ns,
                        max(stat.st_ctime_ns, stat.st_mtime_ns),
                        entry.is_symlink(),
                    )
                )
    else:
        if not folder.exists():
            return []
        # refresh: fsspec caches listings per process, and a long-lived sensor must see new objects.
        for info in folder.fs.ls(folder.path, detail=True, refresh=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") == "file" and _is_data_name(name):
                entries.append(_object_entry(folder, name, info))
    return sorted(entries, key=lambda f: (f.landed_ns, f.name))


def _object_entry(folder: UPath, name: str, info: dict) -> LandedFile:
    modified = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or 0
    modified_ns = int(modified.timestamp() * 1e9) if hasattr(modified, "timestamp") else int(modified * 1e9)
    return LandedFile(folder, name, int(info.get("size") or info.get("Size") or 0), modified_ns, modified_ns, False)


def _list_objects(folder: UPath, start_after: str | None) -> list[dict]:
    """Every object under `folder` in one listing (no request per day folder), in key order; with
    `start_after`, only the keys after it. S3 lists from a key on the server (`StartAfter`), so a
    tick that looks at recent days reads only their keys; other stores filter a full listing."""
    fs, prefix = folder.fs, folder.path.rstrip("/") + "/"
    if fs.protocol[0] in ("s3", "s3a") and hasattr(fs, "call_s3"):
        bucket, _, key_prefix = prefix.partition("/")
        request = {"Bucket": bucket, "Prefix": key_prefix}
        if start_after:
            request["StartAfter"] = key_prefix + start_after
        infos = []
        while True:
            page = fs.call_s3("list_objects_v2", **request)
            infos += [{**item, "name": f"{bucket}/{item['Key']}", "type": "file"} for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return infos
            request["ContinuationToken"] = page["NextContinuationToken"]
    infos = [info for info in fs.find(prefix, detail=True).values() if info.get("type") == "file"]
    return [info for info in infos if start_after is None or info["name"][len(prefix) :] > start_after]


def landing_objects(storage_root: str, since_day: str | None = None) -> dict[str, list[LandedFile]]:
    """Data files of every day folder on an object store (from `since_day` on), grouped by day."""
    events_root = ProjectLayout(storage_root).landing_events
    prefix = events_root.path.rstrip("/") + "/"
    days: dict[str, list[LandedFile]] = {}
    for info in _list_objects(events_root, since_day):
        relative = info["name"][len(prefix) :].split("/")
        if len(relative) != 2 or not _is_data_name(relative[1]):
            continue  # not a file directly in a day folder
        days.setdefault(relative[0], []).append(_object_entry(events_root / relative[0], relative[1], info))
    return {day: sorted(files, key=lambda f: (f.landed_ns, f.name)) for day, files in sorted(days.items())}


def day_folders(storage_root: str) -> list[UPath]:
    """The folders under `landing/events/` in name order; links are not followed (locally)."""
    events_root = ProjectLayout(storage_root).landing_events
    if is_local(events_root):
        if os.path.islink(events_root.path) or not os.path.isdir(events_root.path):
            return []
        with os.scandir(events_root.path) as listing:
            names = [entry.name for entry in listing if entry.is_dir(follow_symlinks=False)]
        return [events_root / name for name in sorted(names)]
    if not events_root.exists():
        return []
    return sorted((p for p in events_root.iterdir() if p.is_dir()), key=lambda p: p.name)


def list_landing_files(storage_root: str, day: str) -> list[LandedFile]:
    """Data files that have arrived for `day`, in arrival order."""
    return scan_folder(ProjectLayout(storage_root).landing_day(day))


def read_column_mapping(data_file: UPath) -> dict[str, str]:
    sidecar_name = data_file.name + MAPPING_SUFFIX
    if len(sidecar_name.encode()) > 255:  # no file system holds such a name: there is no mapping
        return {}
    sidecar = data_file.with_name(sidecar_name)
    if not sidecar.exists():
        return {}
    return json.loads(sidecar.read_text())


def _compact_days(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} days)"


def misplaced_rows_error(name: str, day: str, table: pa.Table) -> BadEventFile | None:
    """A file none of whose timestamped rows falls on `day` belongs elsewhere: an error naming
    the days it holds and the command that lands it there; None for a file of this day."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    ts = table.column("ts")
    inside = pc.and_(pc.greater_equal(ts, start), pc.less(ts, start + dt.timedelta(days=1)))
    if pc.any(inside).as_py() is not False:  # True, or None when no row has a timestamp
        return None
    days = pc.value_counts(pc.strftime(ts.drop_null(), "%Y-%m-%d")).to_pylist()
    days = sorted((d["values"], d["counts"]) for d in days)
    names = [d for d, _ in days]
    held = ", ".join(f"{d}: {n:,} rows" for d, n in days[:3]) + (", ..." if len(days) > 3 else "")
    if len(names) == 1:
        fix = f"land it in its day with `algo-platform upload {name} --date {names[0]}`"
    else:
        fix = "split it by day and land each part with `algo-platform upload PART --date DAY`"
    return BadEventFile(
        name,
        "misplaced",
        f"no row belongs to {day}; its rows are from {_compact_days(names)} ({held}); {fix}",
    )


@dataclass
class DayLoad:
    """What reading one day of the landing zone produced."""

    table: pa.Table | None  # None where the day was written to a file (`write_landing_day`)
    loaded_files: list[str]
    quarantined: list[QuarantinedFile]
    duplicate_files: list[str]
    # name -> {"size", "modified_ns", "sha256"} of every file read: what this ingest saw.
    file_versions: dict[str, dict]


class LandingFileChanged(Exception):
    """A file changed while it was being read; its day must be read again."""


def _still_the_same(file: LandedFile) -> bool:
    """Whether `file` has the size and modification time it was listed with."""
    if is_local(file.folder):
        try:
            stat = os.stat(file.path.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return f"{stat.st_size}:{stat.st_mtime_ns}" == file.signature
    return any(f.name == file.name and f.signature == file.signature for f in scan_folder(file.folder))


def _read_settled(file: LandedFile) -> bytes:
    data = file.path.read_bytes()
    if not _still_the_same(file):
        raise LandingFileChanged(
            f"{file.name} changed while it was being read; writers must write under a hidden temp name "
            "and rename into place (the landing-zone sensor ingests the day again once it settles)"
        )
    return data


def write_landing_day(
    storage_root: str, days: str | Sequence[str], target: Path, extra_columns: Mapping[str, str] | None = None
) -> DayLoad:
    """Every landing file of each of `days` (a partition's days: one, a week's or a month's) in arrival
    order into the Parquet file `target`, one landing file at a time: the partition is never whole in
    memory, only its largest file. Bad files (unreadable, a link, misplaced, or one that breaks the
    reader in a way not foreseen) are quarantined with a reason and never fail the day; byte-identical
    repeats are skipped. The returned load has no table; across several days, files are named
    `<day>/<file>`."""
    days = [days] if isinstance(days, str) else list(days)
    load = DayLoad(None, [], [], [], {})
    schema = raw_day_schema(extra_columns)
    # Read by pandas (the raw suite) with ids and durations as nullable Int64, gaps as <NA>.
    schema = schema.with_metadata(pandas_dtypes(schema))
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        writer.write_table(schema.empty_table())  # a day without events still has its columns
        for day in days:
            day_load = DayLoad(None, [], [], [], {})
            for table in _landed_tables(storage_root, day, extra_columns, day_load):
                writer.write_table(with_low_cardinality_encoded(table).select(schema.names).cast(schema))
            _merge(load, day_load, f"{day}/" if len(days) > 1 else "")
    return load


def _merge(into: DayLoad, day: DayLoad, prefix: str) -> None:
    into.loaded_files += [prefix + name for name in day.loaded_files]
    into.quarantined += [dataclasses.replace(q, file=prefix + q.file) for q in day.quarantined]
    into.duplicate_files += [prefix + name for name in day.duplicate_files]
    into.file_versions |= {prefix + name: version for name, version in day.file_versions.items()}


def _landed_tables(
    storage_root: str, day: str, extra_columns: Mapping[str, str] | None, load: DayLoad
) -> Iterator[pa.Table]:
    """The rows of each good landing file of `day`, in arrival order, with their source_file;
    what was loaded, quarantined or skipped is recorded in `load` as it happens."""
    seen_digests: dict[str, str] = {}
    for file in list_landing_files(storage_root, day):
        path = file.path
        if file.is_link:
            error = BadEventFile(
                path.name, "symlink", "is a symbolic link; links are never followed: land the file itself"
            )
            quarantine_file(storage_root, day, path, None, error)
            load.quarantined.append(QuarantinedFile(path.name, error.reason, error.detail))
            continue
        data = _read_settled(file)
        digest = content_digest(data)
        load.file_versions[path.name] = {"size": file.size, "modified_ns": file.modified_ns, "sha256": digest}
        if digest in seen_digests:
            load.duplicate_files.append(f"{path.name} (same content as {seen_digests[digest]})")
            continue
        mapping = read_column_mapping(path)  # outside the try: a store outage fails the day, it is no bad file
        try:
            table = to_canonical(path.name, parse_bytes(path.name, data), mapping, digest, extra_columns)
            bad = misplaced_rows_error(path.name, day, table)
        except BadEventFile as error:
            bad = error
        except Exception as exc:  # noqa: BLE001 - one unforeseen bad file must not fail its whole day
            # The type only: a reader's message may quote the file's content.
            bad = BadEventFile(
                path.name, "unreadable", f"cannot be read ({type(exc).__name__}); check the file's format"
            )
        if bad is not None:
            quarantine_file(storage_root, day, path, data, bad)
            load.quarantined.append(QuarantinedFile(path.name, bad.reason, bad.detail))
            continue
        del data
        seen_digests[digest] = path.name
        load.loaded_files.append(path.name)
        yield table.append_column("source_file", pa.array([path.name] * table.num_rows, pa.string()))
