"""`algo-platform upload`: check a file, then place it in the landing zone atomically."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from algo_platform.core.atomic import write_atomically
from algo_platform.core.calendar import Grain, ProjectCalendar
from algo_platform.core.schema import CANONICAL_COLUMNS
from algo_platform.ingest.canonical import parse_event_bytes, to_canonical
from algo_platform.ingest.folders import LinkedLandingFolder, writable_landing_dir
from algo_platform.ingest.formats import BadEventFile, DecompressionLimits, content_digest
from algo_platform.ingest.landing import MAPPING_SUFFIX, misplaced_rows_error, read_column_mapping
from algo_platform.ingest.quarantine import MAX_NAME_BYTES


class UploadError(Exception):
    """Refused upload; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class UploadResult:
    target: str
    rows: int
    rows_outside_day: int
    already_present: bool
    note: str | None = None
    ignored_columns: tuple[str, ...] = ()  # in the file, but neither canonical, mapped nor declared


def upload_event_file(
    source: str | Path,
    day: str,
    mapping: dict[str, str],
    storage_root: str,
    partitions_start: str = "1970-01-01",
    today: dt.date | None = None,
    extra_columns: Mapping[str, str] | None = None,
    grain: Grain = "day",
    expected_sha256: str | None = None,
    dry_run: bool = False,
) -> UploadResult:
    """Check `source` as one day's events and land it (`dry_run`: every check, nothing written)."""
    source = Path(source)
    try:
        note = ProjectCalendar(dt.date.fromisoformat(partitions_start), grain=grain).upload_note(day, today)
    except ValueError as exc:
        raise UploadError(f"{source.name}: {exc}") from None
    if not source.is_file():
        raise UploadError(f"{source}: no such file; give the path of a Parquet, CSV or JSONL file")
    name = source.name
    if name.startswith(".") or name.endswith(MAPPING_SUFFIX) or ".." in name:
        raise UploadError(
            f"{name}: file names may not start with '.', contain '..' or end with {MAPPING_SUFFIX}; rename it"
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise UploadError(
            f"{name[:40]}...: the file name is {len(name.encode())} bytes long; "
            f"rename it to at most {MAX_NAME_BYTES} bytes"
        )

    data = source.read_bytes()
    if expected_sha256 is not None and content_digest(data) != expected_sha256:
        raise UploadError(
            f"{name}: the file changed after its preview (sha256 {content_digest(data)[:12]}..., previewed "
            f"{expected_sha256[:12]}...); nothing landed: upload and preview it again"
        )
    try:
        parsed = parse_event_bytes(name, data, DecompressionLimits.from_environment())
        table = to_canonical(name, parsed, mapping, content_digest(data), extra_columns)
        misplaced = misplaced_rows_error(name, day, table)
    except BadEventFile as error:
        raise UploadError(str(error)) from None
    if misplaced is not None:
        raise UploadError(str(misplaced))
    if table.num_rows == 0:
        raise UploadError(f"{name}: the file holds no rows (a header line only?); nothing to land")

    loaded = {*CANONICAL_COLUMNS, *mapping.values(), *(extra_columns or {})}
    ignored = tuple(c for c in parsed.column_names if c not in loaded)
    day_start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    ts = table.column("ts")
    inside = pc.and_(pc.greater_equal(ts, day_start), pc.less(ts, day_start + dt.timedelta(days=1)))
    rows_outside = table.num_rows - pc.sum(pc.fill_null(inside, False).cast("int64")).as_py()

    try:
        target = writable_landing_dir(storage_root, day) / name
    except LinkedLandingFolder as error:
        raise UploadError(str(error)) from None
    if target.exists():
        if content_digest(target.read_bytes()) == content_digest(data):
            landed_mapping = read_column_mapping(target)
            if landed_mapping != mapping:
                raise UploadError(
                    f"{name}: these bytes already landed for {day} with another column mapping ({landed_mapping}); "
                    "landed files are never changed, so upload them under a new name with the new mapping "
                    "(and remove the old one from the landing zone), or use `algo-platform import`, which "
                    "replaces an earlier import of the same bytes"
                )
            return UploadResult(str(target), table.num_rows, rows_outside, True, note, ignored)
        raise UploadError(
            f"{name}: a different file with this name is already in the landing zone for {day} "
            f"({target}); landed files are never overwritten, so upload it under a new name"
        )
    if dry_run:
        return UploadResult(str(target), table.num_rows, rows_outside, False, note, ignored)
    if mapping:
        # The mapping lands first, so any reader that sees the data file also sees its mapping.
        write_atomically(target.with_name(name + MAPPING_SUFFIX), json.dumps(mapping, indent=2).encode())
    write_atomically(target, data)
    return UploadResult(str(target), table.num_rows, rows_outside, False, note, ignored)
