"""The landing zone: where event files arrive, how they are read, and where bad ones go.

Layout under the storage root:
    landing/events/<YYYY-MM-DD>/<file>                 files as uploaded (never modified)
    landing/events/<YYYY-MM-DD>/<file>.columns.json    optional column mapping written by upload
    quarantine/events/<YYYY-MM-DD>/<file>              copies of files that could not be used
    quarantine/events/<YYYY-MM-DD>/<file>.reason.json  why

JSONL policy: a malformed line makes the whole file unusable (file-level quarantine). A
half-read file is worse than a quarantined one, because its good lines would look complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.schema import CANONICAL_SCHEMA, REQUIRED_COLUMNS, with_low_cardinality_encoded

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
MAPPING_SUFFIX = ".columns.json"
REASON_SUFFIX = ".reason.json"


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


def landing_dir(storage_root: str, day: str) -> UPath:
    return UPath(storage_root) / "landing" / "events" / day


def quarantine_dir(storage_root: str, day: str) -> UPath:
    return UPath(storage_root) / "quarantine" / "events" / day


def validate_day(day: str) -> str:
    """Return `day` if it is a real YYYY-MM-DD date; refuse anything else (including paths)."""
    try:
        parsed = dt.date.fromisoformat(day)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise ValueError(f"date {day!r} is not a calendar date in YYYY-MM-DD form, e.g. 2026-11-20")
    return day


def list_landing_files(storage_root: str, day: str) -> list[UPath]:
    """Data files that have fully arrived for `day`, in name order (temp files and sidecars skipped)."""
    folder = landing_dir(storage_root, day)
    if not folder.exists():
        return []
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(MAPPING_SUFFIX)
        ),
        key=lambda p: p.name,
    )


def read_column_mapping(data_file: UPath) -> dict[str, str]:
    sidecar = data_file.with_name(data_file.name + MAPPING_SUFFIX)
    if not sidecar.exists():
        return {}
    return json.loads(sidecar.read_text())


def parse_column_mapping(pairs: list[str]) -> dict[str, str]:
    """`["user_id=userId", ...]` -> `{"user_id": "userId"}` (canonical name -> source name)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        if not sep or not canonical or not source:
            raise ValueError(f"--map {pair!r}: expected CANONICAL=SOURCE, e.g. --map user_id=userId")
        if canonical not in CANONICAL_SCHEMA.names:
            raise ValueError(
                f"--map {pair!r}: {canonical!r} is not a canonical column; "
                f"choose from {', '.join(CANONICAL_SCHEMA.names)}"
            )
        mapping[canonical] = source
    return mapping


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_bytes(name: str, data: bytes) -> pa.Table:
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
            return pacsv.read_csv(io.BytesIO(data))
        return pajson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        message = str(exc)
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
        raise BadEventFile(name, reason, f"cannot be read ({message.splitlines()[0]}); {fix}") from exc


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
    parsed = pd.to_datetime(column.to_pandas(), utc=True, errors="coerce", format="ISO8601")
    unparseable = parsed.isna() & column.to_pandas().notna()
    if unparseable.any():
        examples = column.to_pandas()[unparseable].head(3).tolist()
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
        bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()].head(3).tolist()
        raise BadEventFile(
            name,
            "wrong_type",
            f"column {column_name!r} must hold whole numbers but has {column.type} values such as {bad}; "
            "fix the source or map another column",
        ) from None


def to_canonical(name: str, table: pa.Table, mapping: Mapping[str, str], digest: str) -> pa.Table:
    """Rename mapped columns, check required ones, and cast everything to `CANONICAL_SCHEMA`."""
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
    if table.num_rows == 0:
        raise BadEventFile(name, "no_rows", "file has a header but no rows; nothing to load")

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
    return pa.Table.from_arrays(columns, schema=CANONICAL_SCHEMA)


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


def read_event_bytes(name: str, data: bytes, mapping: Mapping[str, str] | None = None) -> pa.Table:
    return to_canonical(name, _parse_bytes(name, data), mapping or {}, content_digest(data))


def quarantine_file(storage_root: str, day: str, source: UPath, data: bytes, error: BadEventFile) -> UPath:
    """Copy a bad file (never move it) to the quarantine folder, with a reason file beside it."""
    folder = quarantine_dir(storage_root, day)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    target.write_bytes(data)
    reason = {
        "file": str(source),
        "reason": error.reason,
        "detail": error.detail,
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }
    (folder / (source.name + REASON_SUFFIX)).write_text(json.dumps(reason, indent=2))
    return target


@dataclass
class DayLoad:
    """What reading one day of the landing zone produced."""

    table: pa.Table
    loaded_files: list[str]
    quarantined: list[QuarantinedFile]
    duplicate_files: list[str]


def load_landing_day(storage_root: str, day: str) -> DayLoad:
    """Read every landing file of `day`; quarantine bad ones and skip byte-identical repeats."""
    tables: list[pa.Table] = []
    loaded: list[str] = []
    quarantined: list[QuarantinedFile] = []
    duplicates: list[str] = []
    seen_digests: dict[str, str] = {}
    for path in list_landing_files(storage_root, day):
        data = path.read_bytes()
        digest = content_digest(data)
        if digest in seen_digests:
            duplicates.append(f"{path.name} (same content as {seen_digests[digest]})")
            continue
        try:
            table = to_canonical(path.name, _parse_bytes(path.name, data), read_column_mapping(path), digest)
        except BadEventFile as error:
            quarantine_file(storage_root, day, path, data, error)
            quarantined.append(QuarantinedFile(path.name, error.reason, error.detail))
            continue
        seen_digests[digest] = path.name
        loaded.append(path.name)
        tables.append(table.append_column("source_file", pa.array([path.name] * table.num_rows, pa.string())))
    if tables:
        table = with_low_cardinality_encoded(pa.concat_tables(tables, promote_options="permissive"))
    else:
        table = with_low_cardinality_encoded(
            CANONICAL_SCHEMA.empty_table().append_column("source_file", pa.array([], pa.string()))
        )
    return DayLoad(table, loaded, quarantined, duplicates)


def write_atomically(target: UPath, data: bytes) -> None:
    """Write to a hidden temp name in the same folder, then rename: readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        temp.write_bytes(data)
        temp.rename(target)
    finally:
        if temp.exists():
            temp.unlink()
