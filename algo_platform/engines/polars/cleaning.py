"""Cleaning on polars: normalised types, invalid rows dropped under their first reason, one row per
event_id (the first arrival), sorted by user and time.

Each stage is a lazy frame, so the same code cleans a day held in memory (`clean_table`) and a day
larger than memory, in parts, by polars' streaming engine (`large_day.clean_file`).
"""

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algo_platform.core.calendar import Period, span_bounds
from algo_platform.core.schema import CANONICAL_COLUMNS, EVENT_TYPES
from algo_platform.quality.dimensions import FUTURE_TOLERANCE

# Checked row by row, in this order: a row is counted under the first reason that applies.
ROW_REASONS = (
    "missing_user_id",
    "missing_item_id",
    "non_positive_user_id",
    "non_positive_item_id",
    "missing_ts",
    "unknown_event_type",
    "negative_watch_ms",
    "invalid_item_duration",
    "future_timestamp",
    "outside_partition_day",
)
DROP_REASONS = (*ROW_REASONS, "duplicate_event_id", "event_id_collision")
# The columns that make two rows with one event_id the same event (a resend) or a collision.
EVENT_CONTENT = ("user_id", "item_id", "event_type", "watch_ms", "item_duration_ms", "ts", "device", "region", "topic")
LOW_CARDINALITY_TEXT = {"device": "unknown", "region": "unknown", "topic": "unknown"}
# Logs without an event type (e.g. a ratings export) record that the user consumed the item.
TEXT_DEFAULTS = {"event_type": "play", **LOW_CARDINALITY_TEXT}

# Rows arrive in landing order, file by file: the first arrival of an event_id wins.
FIRST = "_first_arrival"
REASON = "_reason"
ROW = "_row"  # a row's position in the raw day
_ORIGINAL = "_original"
EVENT_TYPE = pl.Enum(EVENT_TYPES)


def normalised_text(column: str, missing: str) -> pl.Expr:
    """Trimmed, lower-cased text, with `missing` for nulls (a column that no file had is all null)."""
    return pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase().fill_null(missing)


def _first_failing_rule(day: dt.date | Period, now: dt.datetime) -> pl.Expr:
    """The index in ROW_REASONS of the first rule a row breaks; null for a valid row. A row outside
    the partition's span (a day, week or month) is `outside_partition_day`."""
    start, end = span_bounds(day)
    ts = pl.col("ts")
    # Logs without an event type (e.g. a ratings export) record that the user consumed the item.
    event_type = normalised_text("event_type", "play")
    failing = {
        "missing_user_id": pl.col("user_id").is_null(),
        "missing_item_id": pl.col("item_id").is_null(),
        "non_positive_user_id": pl.col("user_id") <= 0,
        "non_positive_item_id": pl.col("item_id") <= 0,
        "missing_ts": ts.is_null(),
        "unknown_event_type": ~event_type.is_in(EVENT_TYPES),
        "negative_watch_ms": pl.col("watch_ms") < 0,
        "invalid_item_duration": pl.col("item_duration_ms") <= 0,
        "future_timestamp": ts > now + FUTURE_TOLERANCE,
        "outside_partition_day": (ts < start) | (ts >= end),
    }
    assert tuple(failing) == ROW_REASONS
    chain = None
    for code, condition in enumerate(failing.values()):
        # A null condition (a missing optional value) is not a failure.
        chain = (pl.when(condition) if chain is None else chain.when(condition)).then(pl.lit(code, pl.UInt8))
    return chain.otherwise(pl.lit(None, pl.UInt8))


def first_arrivals(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`rows` with FIRST: True for the first row (in landing order) holding its event_id."""
    return rows.with_columns(pl.col("event_id").is_first_distinct().alias(FIRST))


def colliding_repeats(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Of `rows` (with FIRST), the repeats whose event_id an earlier row holds with other content:
    another event under a reused id, not a resend. Only rows of repeated ids are compared (usually none)."""
    first = pl.col(FIRST)
    repeats = rows.filter(~first).drop(FIRST)
    originals = rows.filter(first).select("event_id", *EVENT_CONTENT).join(repeats, on="event_id", how="semi")
    compared = repeats.join(originals, on="event_id", suffix=_ORIGINAL)
    # eq_missing: two nulls are the same value.
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}{_ORIGINAL}")) for c in EVENT_CONTENT)
    return compared.filter(~same).select(repeats.collect_schema().names())


def with_drop_reason(raw: pl.LazyFrame, day: dt.date | Period, now: dt.datetime) -> pl.LazyFrame:
    """`raw` with REASON: the index in ROW_REASONS of the first rule a row breaks (null: valid)."""
    return raw.with_columns(_first_failing_rule(day, now).alias(REASON))


def cleaned_rows(valid: pl.LazyFrame) -> pl.LazyFrame:
    """One row per event_id (its first valid arrival), typed and sorted by user and time."""
    names = valid.collect_schema().names()
    # Rows of one user at one instant stay in landing order (their ROW where the frame has it).
    order = ["user_id", "ts", *([ROW] if ROW in names else [])]
    return valid.filter(pl.col(FIRST)).sort(order, maintain_order=True).select(typed_columns(names))


def typed_columns(names: list[str]) -> list[pl.Expr]:
    """The cleaned table's columns from raw ones: canonical columns typed and normalised, then the
    project's extra columns as they are (flags, positions and source_file left out)."""
    extras = [name for name in names if name not in (*CANONICAL_COLUMNS, "source_file", FIRST, ROW, REASON)]
    typed = {
        "user_id": pl.col("user_id").cast(pl.Int64),
        "item_id": pl.col("item_id").cast(pl.Int64),
        "event_type": normalised_text("event_type", "play").cast(EVENT_TYPE),
        **{name: normalised_text(name, missing) for name, missing in LOW_CARDINALITY_TEXT.items()},
    }
    return [*(typed.get(name, pl.col(name)).alias(name) for name in CANONICAL_COLUMNS), *map(pl.col, extras)]


def drop_counts(reasons: pl.DataFrame, repeats: int, collisions: int) -> dict[str, int]:
    """Dropped rows per reason, every reason named (0 where none)."""
    by_code = dict(reasons.drop_nulls(REASON).iter_rows())
    counts = {reason: int(by_code.get(code, 0)) for code, reason in enumerate(ROW_REASONS)}
    return counts | {"duplicate_event_id": repeats - collisions, "event_id_collision": collisions}


def clean_frame(raw: pl.DataFrame, day: dt.date | Period, now: dt.datetime) -> tuple[pl.DataFrame, dict[str, int]]:
    """A day cleaned in memory: the kept rows, and dropped rows per reason."""
    order, counts = _kept_in_order(raw, day, now)
    return raw[order].select(typed_columns(raw.columns)), counts


def clean_parquet(source: str | Path, day: dt.date | Period, now: dt.datetime) -> tuple[pa.Table, dict[str, int]]:
    """The raw day in the Parquet file `source`, cleaned in memory into the stored Arrow types.

    The day is read here so that nothing else holds it: each raw column is freed as soon as its
    cleaned copy exists, so the memory peak is the raw day plus one column, not two days."""
    raw_schema = pq.read_schema(source)
    raw = pl.read_parquet(source)
    order, counts = _kept_in_order(raw, day, now)
    columns = {}
    for typed in typed_columns(raw.columns):
        name = typed.meta.output_name()
        kept = raw.select(pl.col(name).gather(order)).to_series()
        raw = raw.drop(name)
        if name in TEXT_DEFAULTS:  # normalised per distinct value, straight into the stored dictionary
            columns[name] = _normalised_dictionary(
                kept, TEXT_DEFAULTS[name], EVENT_TYPES if name == "event_type" else None
            )
        else:
            columns[name] = stored_column(kept.to_frame().select(typed).to_series(), raw_schema.field(name).type)
    return pa.table(columns), counts


def _normalised_dictionary(column: pl.Series, missing: str, values: tuple[str, ...] | None) -> pa.DictionaryArray:
    """A text column normalised as `normalised_text` does, as a dictionary array: each distinct
    value is normalised once, not once per row. `values`: the fixed dictionary (event types), else
    the normalised values in order of first appearance (as Arrow's dictionary_encode gives them)."""
    codes = column.cast(pl.Categorical).to_physical().alias("code")
    distinct = pl.DataFrame([codes, column.cast(pl.String).alias("value")]).unique(
        "code", keep="first", maintain_order=True
    )
    normalised = distinct.select(normalised_text("value", missing)).to_series()
    dictionary = pl.Series(values) if values is not None else normalised.unique(maintain_order=True)
    position = {value: index for index, value in enumerate(dictionary.to_list())}
    index_of_code = [position[value] for value in normalised.to_list()]
    indices = codes.replace_strict(distinct["code"], index_of_code, default=None, return_dtype=pl.Int32)
    index_type = pa.int8() if values is not None else pa.int32()
    return pa.DictionaryArray.from_arrays(indices.to_arrow().cast(index_type), dictionary.to_arrow().cast(pa.string()))


def _kept_in_order(raw: pl.DataFrame, day: dt.date | Period, now: dt.datetime) -> tuple[pl.Series, dict[str, int]]:
    """The positions of the rows to keep, in the cleaned order, and the dropped rows per reason.

    The rules and the dedup are computed as flags beside the raw columns, and the kept rows are
    sorted by their keys alone: the columns are then copied once each, in sorted order."""
    flags = raw.select(_first_failing_rule(day, now).alias(REASON))
    flags = flags.with_columns(first_valid_arrivals(raw["event_id"], flags[REASON].is_null()).alias(FIRST))
    reasons = flags.group_by(REASON).len()
    repeats = int(flags.select((pl.col(REASON).is_null() & ~pl.col(FIRST)).sum()).item())
    kept = raw.select("user_id", "ts").with_row_index(ROW).filter(flags[FIRST])
    # Only the positions are sorted (rows of one user at one instant stay in landing order).
    order = kept.select(pl.col(ROW).sort_by("user_id", "ts", maintain_order=True)).to_series()
    del kept
    return order, drop_counts(reasons, repeats, _collisions(raw, flags, repeats))


def first_valid_arrivals(event_id: pl.Series, valid: pl.Series) -> pl.Series:
    """True for each valid row that is the first valid row holding its event_id.

    Ids are hashed to 64 bits first (a hash table of integers, not of strings: a fraction of the
    memory); rows whose hash was seen before, and every row sharing such a hash, are then decided
    on the ids themselves, so a hash collision between two ids never drops an event."""
    frame = pl.DataFrame({"event_id": event_id, "valid": valid})
    hashed = pl.when(pl.col("valid")).then(pl.col("event_id").hash(seed=0))
    frame = frame.with_columns(hashed.alias("hash"))
    frame = frame.with_columns((pl.col("valid") & pl.col("hash").is_first_distinct()).alias(FIRST))
    seen_before = frame.filter(pl.col("valid") & ~pl.col(FIRST))["hash"].unique()
    if seen_before.is_empty():
        return frame[FIRST]
    suspects = frame.with_row_index(ROW).filter(pl.col("valid") & pl.col("hash").is_in(seen_before.implode()))
    return frame[FIRST].scatter(suspects[ROW], suspects["event_id"].is_first_distinct())


def _collisions(raw: pl.DataFrame, flags: pl.DataFrame, repeats: int) -> int:
    """How many of the `repeats` (valid rows whose id an earlier valid row holds) differ in content."""
    if repeats == 0:
        return 0
    rows = raw.select("event_id", *EVENT_CONTENT).with_columns(flags[FIRST])
    valid = flags[REASON].is_null()
    repeated = rows.filter(valid & ~flags[FIRST]).get_column("event_id").unique()
    candidates = rows.filter(valid & pl.col("event_id").is_in(repeated.implode()))
    return colliding_repeats(candidates.lazy()).select(pl.len()).collect().item()


def clean_table(raw: pa.Table, day: dt.date | Period, now: dt.datetime) -> tuple[pa.Table, dict[str, int]]:
    """An Arrow day cleaned; the result in the stored types (event types and text as dictionaries)."""
    cleaned, counts = clean_frame(pl.from_arrow(raw), day, now)
    return events_arrow(cleaned, raw.schema), counts


def events_arrow(cleaned: pl.DataFrame, raw_schema: pa.Schema) -> pa.Table:
    """Cleaned events in the stored Arrow types (`stored_column`)."""
    return pa.table({name: stored_column(cleaned[name], raw_schema.field(name).type) for name in cleaned.columns})


def stored_column(cleaned: pl.Series, raw_type: pa.DataType) -> pa.Array:
    """A cleaned column as stored: ids int64, event_type int8 codes into EVENT_TYPES, device, region
    and topic dictionary-encoded, every other column in its raw Arrow type (polars' large and view
    strings back to Arrow's plain string)."""
    name = cleaned.name
    if name == "event_type":
        codes = cleaned.to_physical().to_arrow().cast(pa.int8())
        return pa.DictionaryArray.from_arrays(codes, pa.array(EVENT_TYPES))
    column = cleaned.to_arrow()
    if name in LOW_CARDINALITY_TEXT:
        return pc.dictionary_encode(column.cast(pa.string()))
    if name in ("user_id", "item_id"):  # int64 already (typed_columns)
        return column
    return column.cast(_plain(raw_type))


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    return arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type


def raw_collisions_of_file(raw_path: str | Path) -> list[int]:
    """Row positions in a raw day's Parquet file whose event_id an earlier row holds with other
    content, without holding its ids: only rows whose event_id hash repeats (usually few) are read
    whole and compared."""
    raw = pl.scan_parquet(raw_path).with_row_index(ROW)
    hashes = raw.select(ROW, pl.col("event_id").hash(seed=0).alias("hash")).collect(engine="streaming")
    suspects = hashes.filter(pl.col("hash").is_duplicated())[ROW]
    del hashes
    if suspects.is_empty():
        return []
    rows = raw.filter(pl.col(ROW).is_in(suspects.implode())).select(ROW, "event_id", *EVENT_CONTENT)
    return sorted(colliding_repeats(first_arrivals(rows.collect().lazy())).collect()[ROW].to_list())
