"""`algo-platform upload`: check a file, then place it in the landing zone atomically."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from algo_platform.landing import (
    MAPPING_SUFFIX,
    BadEventFile,
    content_digest,
    landing_dir,
    read_event_bytes,
    validate_day,
    write_atomically,
)


class UploadError(Exception):
    """Refused upload; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class UploadResult:
    target: str
    rows: int
    rows_outside_day: int
    already_present: bool


def upload_event_file(source: str | Path, day: str, mapping: dict[str, str], storage_root: str) -> UploadResult:
    source = Path(source)
    try:
        validate_day(day)
    except ValueError as exc:
        raise UploadError(f"{source.name}: {exc}") from None
    if not source.is_file():
        raise UploadError(f"{source}: no such file; give the path of a Parquet, CSV or JSONL file")
    name = source.name
    if name.startswith(".") or name.endswith(MAPPING_SUFFIX) or ".." in name:
        raise UploadError(
            f"{name}: file names may not start with '.', contain '..' or end with {MAPPING_SUFFIX}; rename it"
        )

    data = source.read_bytes()
    try:
        table = read_event_bytes(name, data, mapping)
    except BadEventFile as error:
        raise UploadError(str(error)) from None

    day_start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    ts = table.column("ts")
    inside = pc.and_(pc.greater_equal(ts, day_start), pc.less(ts, day_start + dt.timedelta(days=1)))
    rows_outside = table.num_rows - pc.sum(pc.fill_null(inside, False).cast("int64")).as_py()

    target = landing_dir(storage_root, day) / name
    if target.exists():
        if content_digest(target.read_bytes()) == content_digest(data):
            return UploadResult(str(target), table.num_rows, rows_outside, already_present=True)
        raise UploadError(
            f"{name}: a different file with this name is already in the landing zone for {day} "
            f"({target}); landed files are never overwritten, so upload it under a new name"
        )
    if mapping:
        # The mapping lands first, so any reader that sees the data file also sees its mapping.
        write_atomically(target.with_name(name + MAPPING_SUFFIX), json.dumps(mapping, indent=2).encode())
    write_atomically(target, data)
    return UploadResult(str(target), table.num_rows, rows_outside, already_present=False)
