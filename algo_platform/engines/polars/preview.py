"""What a file holds before it lands: rows, days, columns and how they map, what cleaning would drop
and why, and the file's profile (the data page's charts for it). Nothing is written anywhere.

The upload page and `algo-platform upload --dry-run` preview one day's file; `algo-platform import
--dry-run` previews a history file batch by batch, as the import reads it (duplicates are then
found within a batch, not across batches: the real ingest finds them per day).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from algo_platform.core.calendar import Period
from algo_platform.core.schema import CANONICAL_COLUMNS
from algo_platform.engines.polars.cleaning import clean_table
from algo_platform.ingest.canonical import parse_event_bytes, to_canonical
from algo_platform.ingest.formats import BadEventFile, DecompressionLimits, content_digest, read_batches
from algo_platform.ingest.importer import file_digest, import_identity, with_event_ids
from algo_platform.profiles.compute import PROFILE_SCHEMA, profile_events


class PreviewRefused(Exception):
    """The file cannot be read or mapped; the message names the file, the problem and the fix."""


@dataclass
class FilePreview:
    name: str
    size: int
    sha256: str
    rows: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    rows_per_day: Counter = field(default_factory=Counter)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (column in the file, what it becomes)
    profile: pa.Table = field(default_factory=PROFILE_SCHEMA.empty_table)

    @property
    def days(self) -> list[str]:
        return sorted(self.rows_per_day)

    @property
    def dropped_share(self) -> float:
        return sum(self.dropped.values()) / self.rows if self.rows else 0.0

    def lines(self) -> list[str]:
        """The preview as text (the CLI's dry runs)."""
        days = self.days
        span = f"{days[0]} .. {days[-1]}" if days else "none"
        out = [
            f"{self.name}: {self.rows:,} rows, {self.size:,} bytes, sha256 {self.sha256}",
            f"days: {len(days):,} with events ({span})",
            "columns: " + ", ".join(f"{source} -> {target}" for source, target in self.columns),
            f"would keep {self.rows_kept:,} rows and drop {sum(self.dropped.values()):,} ({self.dropped_share:.1%})",
        ]
        out += [f"  dropped {reason}: {count:,}" for reason, count in self.dropped.most_common() if count]
        return out


def preview_upload(project, settings, path: str | Path, day: str, overrides=()) -> tuple:
    """What `algo-platform upload` would land (its own checks, run dry) and the file's preview, for a
    project; raises UploadError, PreviewRefused or ValueError where the upload would be refused."""
    from algo_platform.ingest.for_project import column_mapping, upload_for_project

    result = upload_for_project(project, settings, path, day, overrides, dry_run=True)
    span = project.calendar.period_of(day)
    return result, preview_day_file(path, day, column_mapping(project, overrides), project.data.extra_columns, span)


def _column_roles(columns: list[str], mapping: Mapping[str, str], extra_columns: Mapping[str, str]) -> list:
    by_source = {source: canonical for canonical, source in mapping.items()}
    roles = []
    for column in columns:
        target = by_source.get(column, column)
        if target in CANONICAL_COLUMNS:
            roles.append((column, target))
        elif target in extra_columns:
            roles.append((column, f"{target} (extra column, {extra_columns[target]})"))
        else:
            roles.append((column, "not loaded"))
    return roles


def _add(preview: FilePreview, canonical: pa.Table, span: Period, now: dt.datetime, extra: Mapping[str, str]) -> None:
    """One batch of canonical rows: counted, cleaned as the ingest would clean `span`, profiled."""
    days = pc.cast(pc.cast(canonical.column("ts"), pa.timestamp("s", "UTC")), pa.date32())
    for day, rows in pl.from_arrow(days).drop_nulls().value_counts().iter_rows():
        preview.rows_per_day[day.isoformat()] += rows
    raw = canonical.append_column("source_file", pa.array([preview.name] * canonical.num_rows, pa.string()))
    cleaned, dropped = clean_table(raw, span, now)
    preview.rows += canonical.num_rows
    preview.rows_kept += cleaned.num_rows
    preview.dropped.update({reason: count for reason, count in dropped.items() if count})
    profile = profile_events(pl.from_arrow(cleaned).lazy(), extra)
    preview.profile = pa.concat_tables([preview.profile, profile])


def _summed(profile: pa.Table) -> pa.Table:
    """Batches' profiles added up (every value is a count)."""
    frame = pl.from_arrow(profile)
    keys = ["day", "section", "key", "id", "detail"]
    return frame.group_by(keys, maintain_order=True).agg(pl.col("value").sum()).select(profile.schema.names).to_arrow()


def preview_day_file(
    path: str | Path,
    day: str,
    mapping: Mapping[str, str],
    extra_columns: Mapping[str, str],
    span: Period | None = None,
    now: dt.datetime | None = None,
) -> FilePreview:
    """One day's upload: the file as `upload` would read it, cleaned as `day`'s partition (`span`) would be."""
    path = Path(path)
    data = path.read_bytes()
    preview = FilePreview(path.name, len(data), content_digest(data))
    try:
        parsed = parse_event_bytes(path.name, data, DecompressionLimits.from_environment())
        canonical = to_canonical(path.name, parsed, mapping, preview.sha256, extra_columns)
    except BadEventFile as error:
        raise PreviewRefused(str(error)) from None
    preview.columns = _column_roles(parsed.column_names, mapping, extra_columns)
    first = dt.date.fromisoformat(day)
    _add(preview, canonical, span or Period(first, first + dt.timedelta(days=1)), now or dt.datetime.now(dt.UTC),
         extra_columns)  # fmt: skip
    return preview


def preview_history_file(
    source: str, mapping: Mapping[str, str], extra_columns: Mapping[str, str], now: dt.datetime | None = None
) -> FilePreview:
    """A history file, batch by batch as `import` reads it; each batch cleaned over the days it covers."""
    path = UPath(source)
    if not path.is_file():
        raise PreviewRefused(f"{source}: no such file; give the path or URL of a Parquet, CSV or JSONL file")
    digest = file_digest(path)
    preview = FilePreview(path.name, path.stat().st_size, digest)
    import_id = import_identity(digest, mapping, extra_columns)
    now = now or dt.datetime.now(dt.UTC)
    try:
        for batch in read_batches(path):
            if not preview.columns:
                preview.columns = _column_roles(batch.column_names, mapping, extra_columns)
            # Event ids as the import gives them: the same row of the same file, the same id.
            batch = with_event_ids(batch, mapping, import_id, preview.rows)
            canonical = to_canonical(path.name, batch, mapping, digest, extra_columns)
            days = pc.cast(pc.cast(canonical.column("ts"), pa.timestamp("s", "UTC")), pa.date32())
            low, high = pc.min(days).as_py(), pc.max(days).as_py()
            span = Period(low, high + dt.timedelta(days=1)) if low else Period(now.date(), now.date())
            _add(preview, canonical, span, now, extra_columns)
    except BadEventFile as error:
        raise PreviewRefused(str(error)) from None
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise PreviewRefused(
            f"{path.name}: cannot be read ({str(error).splitlines()[0][:200]}); fix the file"
        ) from None
    preview.profile = _summed(preview.profile)
    return preview
