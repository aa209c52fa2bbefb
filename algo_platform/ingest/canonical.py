"""A team's columns become the platform's: the column mapping (`CANONICAL=SOURCE`), timestamps to
UTC, ids and counts to integers, declared extra columns to their types; a value that cannot be
converted fails the file, naming the column and the value."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from algo_platform.core.schema import CANONICAL_SCHEMA, REQUIRED_COLUMNS, with_low_cardinality_encoded
from algo_platform.ingest.formats import BadEventFile, DecompressionLimits, parse_bytes

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
    name: str,
    table: pa.Table,
    mapping: Mapping[str, str],
    digest: str,
    extra_columns: Mapping[str, str] | None = None,
    added: tuple[str, ...] = (),
) -> pa.Table:
    """Rename mapped columns, check required ones, and cast everything to `CANONICAL_SCHEMA` plus
    the project's declared extra columns (a rating, a price...); other columns are not loaded.
    `added` are columns the platform appended (an import's event ids): a refusal lists the file's own."""
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
            f"mapped source column(s) {unknown_sources} not in file (columns: "
            f"{', '.join(c for c in table.column_names if c not in added)})",
        )
    table = table.rename_columns([renames.get(c, c) for c in table.column_names])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        hint = " ".join(f"--map {c}=<source column>" for c in missing)
        raise BadEventFile(
            name,
            "missing_column",
            f"missing required column(s) {', '.join(repr(c) for c in missing)} "
            f"(columns: {', '.join(c for c in table.column_names if c not in added)}); map them with {hint}",
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
    return parse_bytes(name, data, limits)


def raw_day_schema(extra_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """A raw day's columns: the canonical and extra columns, low-cardinality text as dictionaries,
    and the landing file each row came from."""
    empty = event_schema(extra_columns).empty_table().append_column("source_file", pa.array([], pa.string()))
    return with_low_cardinality_encoded(empty).schema
