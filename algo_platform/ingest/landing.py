"""The landing zone: where event files arrive, how they are read, and where bad ones go.

Layout under the storage root:
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

JSONL policy: a malformed line makes the whole file unusable (file-level quarantine). A
half-read file is worse than a quarantined one, because its good lines would look complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.atomic import write_atomically
from algo_platform.core.layout import ProjectLayout
from algo_platform.core.schema import CANONICAL_SCHEMA, REQUIRED_COLUMNS, pandas_dtypes, with_low_cardinality_encoded

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
# Text formats may arrive compressed: `events.csv.gz`, `events.jsonl.zst`.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
MAPPING_SUFFIX = ".columns.json"
REASON_SUFFIX = ".reason.json"
# Room under the usual 255-byte file-name limit for the quarantine's `.reason.json` sidecar.
MAX_NAME_BYTES = 200
# Delimiters recognised in a CSV header, in order of preference on a tie.
CSV_DELIMITERS = (",", ";", "\t", "|")


class BadEventFile(Exception):
    """A landing-zone file that cannot be loaded; `reason` is a stable code, `detail` says why."""

    def __init__(self, file: str, reason: str, detail: str):
        super().__init__(f"{file}: {detail}")
        self.file = file
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class QuarantinedFile:
    file: str
    reason: str
    detail: str


class LinkedLandingFolder(ValueError):
    """A folder a writer would write into is a symbolic link."""


def refuse_linked_folders(storage_root: str, folder: UPath) -> UPath:
    """`folder`, for a writer; refused when it or a folder between it and the storage root is a
    symbolic link: a write through it would land outside the storage root's zones."""
    if is_local(folder):
        root, current = os.path.abspath(UPath(storage_root).path), os.path.abspath(folder.path)
        while current.startswith(root + os.sep):
            if os.path.islink(current):
                raise LinkedLandingFolder(
                    f"{current} is a symbolic link; nothing is written through links, which could lead "
                    "out of the storage root: replace it with a real folder"
                )
            current = os.path.dirname(current)
    return folder


def writable_landing_dir(storage_root: str, day: str) -> UPath:
    """The day's landing folder, for a writer (never through a link: `refuse_linked_folders`)."""
    return refuse_linked_folders(storage_root, ProjectLayout(storage_root).landing_day(day))


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


def is_local(folder: UPath) -> bool:
    """A path on this machine's file system (where links exist), not an object store."""
    return folder.protocol in ("", "file", "local")


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


def is_object_store(storage_root: str) -> bool:
    return not is_local(UPath(storage_root))


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


EXTRA_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}


def parse_column_mapping(pairs: list[str], extra_columns: Mapping[str, str] | None = None) -> dict[str, str]:
    """`["user_id=userId", ...]` -> `{"user_id": "userId"}` (canonical or declared extra name -> source name)."""
    known = [*CANONICAL_SCHEMA.names, *(extra_columns or {})]
    mapping: dict[str, str] = {}
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        if not sep or not canonical or not source:
            raise ValueError(f"--map {pair!r}: expected CANONICAL=SOURCE, e.g. --map user_id=userId")
        if canonical not in known:
            raise ValueError(
                f"--map {pair!r}: {canonical!r} is neither a canonical column nor one of the project's "
                f"data.extra_columns; choose from {', '.join(known)}"
            )
        mapping[canonical] = source
    return mapping


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DecompressionLimits:
    """How far a compressed upload may expand: a few hundred KiB of gzip can inflate to gigabytes."""

    max_bytes: int = 1 << 30
    max_ratio: float = 100.0

    @classmethod
    def from_environment(cls) -> DecompressionLimits:
        """ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB and ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO."""
        mb = os.environ.get("ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB")
        ratio = os.environ.get("ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO")
        return cls(int(mb) << 20 if mb else cls.max_bytes, float(ratio) if ratio else cls.max_ratio)

    def bound(self, compressed_bytes: int) -> int:
        return int(min(self.max_bytes, max(compressed_bytes, 1) * self.max_ratio))


def _decompressed(name: str, data: bytes, limits: DecompressionLimits | None = None) -> tuple[str, bytes]:
    """`events.csv.gz` -> (`events.csv`, its bytes); other names unchanged. With `limits`, a file
    that expands beyond them is refused as soon as it does, before it fills memory."""
    stem, dot, ext = name.rpartition(".")
    codec = COMPRESSIONS.get(f".{ext.lower()}") if dot else None
    if codec is None:
        return name, data
    if not data:
        raise BadEventFile(name, "empty_file", "file is empty (0 bytes); re-export it from the source")
    chunks, size = [], 0
    try:
        with pa.CompressedInputStream(pa.BufferReader(data), codec) as stream:
            if limits is None:
                return stem, stream.read()
            bound = limits.bound(len(data))
            while chunk := stream.read(8 << 20):
                size += len(chunk)
                if size > bound:
                    raise BadEventFile(
                        name,
                        "decompression_bomb",
                        f"expands beyond {bound / 2**20:,.0f} MiB from {len(data) / 2**20:,.2f} MiB compressed "
                        f"(the limits are {limits.max_bytes >> 20} MiB and {limits.max_ratio:g}x); upload it "
                        "with `algo-platform import`, which streams, or raise ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB "
                        "/ ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO if the file is genuine",
                    )
                chunks.append(chunk)
    except (OSError, pa.ArrowInvalid):
        raise BadEventFile(
            name, "corrupt_compressed", f"not a valid {codec} stream (truncated?); compress the file again"
        ) from None
    return stem, b"".join(chunks)


def csv_delimiter(data: bytes) -> str:
    """The delimiter of a CSV file, from its header line (European exports use ';')."""
    header = data.split(b"\n", 1)[0]
    counts = {d: header.count(d.encode()) for d in CSV_DELIMITERS}
    best = max(CSV_DELIMITERS, key=lambda d: counts[d])  # max keeps the first on a tie
    return best if counts[best] else ","


def _safe_arrow_message(message: str) -> str:
    """Arrow's parse error without the file content it quotes (a CSV error repeats the whole row)."""
    first = message.splitlines()[0] if message else ""
    first = re.sub(r"(Expected \d+ columns, got \d+):.*", r"\1", first)
    return first[:200]


def _parse_bytes(name: str, data: bytes, limits: DecompressionLimits | None = None) -> pa.Table:
    name, data = _decompressed(name, data, limits)
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in SUPPORTED_SUFFIXES:
        raise BadEventFile(
            name,
            "unsupported_format",
            f"unsupported file type {suffix or '(no extension)'!r}; "
            f"convert it to one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    if not data:
        raise BadEventFile(name, "empty_file", "file is empty (0 bytes); re-export it from the source")
    try:
        if suffix == ".parquet":
            return pq.read_table(pa.BufferReader(data))
        if suffix == ".csv":
            parse = pacsv.ParseOptions(delimiter=csv_delimiter(data))
            return pacsv.read_csv(io.BytesIO(data), parse_options=parse)
        return pajson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        message = _safe_arrow_message(str(exc))
        if suffix == ".parquet":
            reason, fix = "corrupt_parquet", "the file is truncated or not Parquet; upload it again"
        elif "UTF8" in message or "utf-8" in message.lower():
            reason, fix = "undecodable_bytes", "re-export the file as UTF-8"
        elif "Empty CSV" in message:
            raise BadEventFile(name, "empty_file", "file has no header and no rows") from exc
        elif suffix in (".jsonl", ".json"):
            reason, fix = "malformed_jsonl", "every line must be one JSON object; fix or drop the bad lines"
        else:
            reason, fix = "unreadable", "check the file's format"
        raise BadEventFile(name, reason, f"cannot be read ({message}); {fix}") from exc


def _short(value: object) -> str:
    """An example bad value, cut short: enough to find it in the file, not a copy of the file."""
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _timestamps_to_utc(name: str, column: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return column.cast(pa.timestamp("ms", tz="UTC"))
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        magnitude = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 0
        # Epoch numbers carry no unit: infer it from the magnitude (1e9 s ~ 1e12 ms ~ 2001).
        unit_ms = 1000.0 if magnitude < 1e11 else 1.0 if magnitude < 1e14 else 1e-3 if magnitude < 1e17 else 1e-6
        millis = pa.array(np.round(values * unit_ms), mask=np.isnan(values)).cast(pa.int64())
        return millis.cast(pa.timestamp("ms", tz="UTC"))
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        # Epoch numbers read as text (a CSV read with every column as text) are numbers, not dates.
        text = pc.utf8_trim_whitespace(column)
        present = text.drop_null()
        if len(present) and pc.all(pc.match_substring_regex(present, r"^-?\d+(\.\d*)?$")).as_py():
            return _timestamps_to_utc(name, text.cast(pa.float64()))
    parsed = pd.to_datetime(column.to_pandas(), utc=True, errors="coerce", format="ISO8601")
    unparseable = parsed.isna() & column.to_pandas().notna()
    if unparseable.any():
        examples = [_short(v) for v in column.to_pandas()[unparseable].head(3).tolist()]
        raise BadEventFile(
            name,
            "wrong_type",
            f"column 'ts' has values that are not timestamps, e.g. {examples}; use ISO 8601 or epoch",
        )
    return pa.Array.from_pandas(parsed).cast(pa.timestamp("ms", tz="UTC"))


def _cast_integer(name: str, column_name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64())
    try:
        if pa.types.is_floating(column.type):
            return pc.round(column).cast(pa.int64())
        return column.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = column.to_pandas()
        bad = [_short(v) for v in series[pd.to_numeric(series, errors="coerce").isna() & series.notna()].head(3)]
        raise BadEventFile(
            name,
            "wrong_type",
            f"column {column_name!r} must hold whole numbers but has {column.type} values such as {bad}; "
            "fix the source or map another column",
        ) from None


def to_canonical(
    name: str, table: pa.Table, mapping: Mapping[str, str], digest: str, extra_columns: Mapping[str, str] | None = None
) -> pa.Table:
    """Rename mapped columns, check required ones, and cast everything to `CANONICAL_SCHEMA` plus
    the project's declared extra columns (a rating, a price...); other columns are not loaded."""
    repeated = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
    if repeated:
        raise BadEventFile(
            name,
            "duplicate_columns",
            f"column name(s) {', '.join(map(repr, repeated))} appear more than once in the header; "
            "rename or drop the repeats and upload the file again",
        )
    renames = {source: canonical for canonical, source in mapping.items()}
    unknown_sources = [source for source in renames if source not in table.column_names]
    if unknown_sources:
        raise BadEventFile(
            name,
            "missing_column",
            f"mapped source column(s) {unknown_sources} not in file (columns: {', '.join(table.column_names)})",
        )
    table = table.rename_columns([renames.get(c, c) for c in table.column_names])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        hint = " ".join(f"--map {c}=<source column>" for c in missing)
        raise BadEventFile(
            name,
            "missing_column",
            f"missing required column(s) {', '.join(repr(c) for c in missing)} "
            f"(columns: {', '.join(table.column_names)}); map them with {hint}",
        )
    columns = []
    for field in CANONICAL_SCHEMA:
        if field.name not in table.column_names:
            if field.name == "event_id":
                # Deterministic ids, so re-reading the same file yields the same events.
                ids = pc.binary_join_element_wise(
                    pa.scalar(digest[:16]), pa.array(np.arange(table.num_rows).astype(str)), "-"
                )
                columns.append(ids)
            else:
                columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if field.name == "ts":
            columns.append(_timestamps_to_utc(name, column))
        elif pa.types.is_integer(field.type):
            columns.append(_cast_integer(name, field.name, column))
        else:
            columns.append(_cast_text(name, field.name, column))
    for column_name, type_name in (extra_columns or {}).items():
        extra = pa.field(column_name, EXTRA_TYPES[type_name])
        if column_name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, extra.type))
        elif pa.types.is_string(extra.type):
            columns.append(_cast_text(name, column_name, table.column(column_name)))
        else:
            columns.append(_cast_number(name, column_name, table.column(column_name), type_name))
    return pa.Table.from_arrays(columns, schema=event_schema(extra_columns))


def event_schema(extra_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """The canonical columns followed by a project's declared extra columns."""
    extras = [pa.field(name, EXTRA_TYPES[type_name]) for name, type_name in (extra_columns or {}).items()]
    return pa.schema([*CANONICAL_SCHEMA, *extras])


def _cast_number(name: str, column_name: str, column: pa.ChunkedArray, type_name: str) -> pa.ChunkedArray:
    try:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.cast(pa.string())  # blank cells are missing values, not bad numbers
            column = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), pa.scalar(None, pa.string()), column)
        return column.cast(EXTRA_TYPES[type_name])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise BadEventFile(
            name,
            "bad_value",
            f"column {column_name!r} (declared {type_name} in the project's data.extra_columns) holds values that are "
            "not numbers; fix them or declare the column as string",
        ) from None


def _cast_text(name: str, column_name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        # CSV readers keep undecodable text as raw bytes; it only fails here, column by column.
        raise BadEventFile(
            name,
            "undecodable_bytes",
            f"column {column_name!r} holds bytes that are not UTF-8; re-export the file as UTF-8",
        ) from None


def parse_event_bytes(name: str, data: bytes, limits: DecompressionLimits | None = None) -> pa.Table:
    """The file as read (its own column names), before mapping; BadEventFile when unreadable."""
    return _parse_bytes(name, data, limits)


def quarantine_name(name: str) -> str:
    """The name a file keeps in quarantine: its own, or a shortened one that leaves room for the
    `.reason.json` sidecar (a digest of the full name keeps shortened names distinct)."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name.encode()[:120].decode(errors='ignore')}...{digest}"


def quarantine_file(storage_root: str, day: str, source: UPath, data: bytes | None, error: BadEventFile) -> UPath:
    """Copy a bad file (never move it) to the quarantine folder, with a reason file beside it.

    `data=None` records the reason alone (a link is quarantined as a link: its target is not read).
    Both are written under a temp name and renamed, so a link planted in the quarantine folder is
    replaced, never written through; a linked quarantine folder is refused (`refuse_linked_folders`)."""
    folder = refuse_linked_folders(storage_root, ProjectLayout(storage_root).quarantine_day(day))
    name = quarantine_name(source.name)
    if data is not None:
        write_atomically(folder / name, data)
    reason = {
        "file": str(source),
        "reason": error.reason,
        "detail": error.detail,
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }
    write_atomically(folder / (name + REASON_SUFFIX), json.dumps(reason, indent=2).encode())
    return folder / name


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


def load_landing_day(storage_root: str, day: str, extra_columns: Mapping[str, str] | None = None) -> DayLoad:
    """Read every landing file of `day` in arrival order; quarantine bad ones, skip byte-identical repeats.

    Any single bad file (unreadable, a link, misplaced, or one that breaks the reader in a way
    not foreseen) is quarantined with a reason; it never fails the day."""
    load = DayLoad(None, [], [], [], {})
    tables = list(_landed_tables(storage_root, day, extra_columns, load))
    if tables:
        load.table = with_low_cardinality_encoded(pa.concat_tables(tables, promote_options="permissive"))
    else:
        load.table = raw_day_schema(extra_columns).empty_table()
    return load


def write_landing_day(
    storage_root: str, day: str, target: Path, extra_columns: Mapping[str, str] | None = None
) -> DayLoad:
    """`load_landing_day` into the Parquet file `target`, one landing file at a time: the day is
    never whole in memory, only its largest file. The returned load has no table."""
    load = DayLoad(None, [], [], [], {})
    schema = raw_day_schema(extra_columns)
    # Read by pandas (the raw suite) with ids and durations as nullable Int64, gaps as <NA>.
    schema = schema.with_metadata(pandas_dtypes(schema))
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        writer.write_table(schema.empty_table())  # a day without events still has its columns
        for table in _landed_tables(storage_root, day, extra_columns, load):
            writer.write_table(with_low_cardinality_encoded(table).select(schema.names).cast(schema))
    return load


def raw_day_schema(extra_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """A raw day's columns: the canonical and extra columns, low-cardinality text as dictionaries,
    and the landing file each row came from."""
    empty = event_schema(extra_columns).empty_table().append_column("source_file", pa.array([], pa.string()))
    return with_low_cardinality_encoded(empty).schema


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
            table = to_canonical(path.name, _parse_bytes(path.name, data), mapping, digest, extra_columns)
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
