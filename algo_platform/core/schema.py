"""The canonical event schema every landing-zone file is mapped onto."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

EVENT_TYPES: tuple[str, ...] = ("play", "like", "share", "comment", "follow", "skip")
# What counts as an interaction in training sequences unless a project says otherwise: skips say
# "not this", so they are not part of the sequence a user chose to watch.
DEFAULT_INTERACTION_TYPES: tuple[str, ...] = ("play", "like", "share", "comment", "follow")
REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "ts")

# `topic` is optional beyond ARCHITECTURE.md's list: short-video logs usually carry the item's
# category, and the feature tables summarise tastes by it. Files without it load fine.
CANONICAL_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("user_id", pa.int64()),
        pa.field("item_id", pa.int64()),
        pa.field("event_type", pa.string()),
        pa.field("watch_ms", pa.int64()),
        pa.field("item_duration_ms", pa.int64()),
        pa.field("ts", pa.timestamp("ms", tz="UTC")),
        pa.field("device", pa.string()),
        pa.field("region", pa.string()),
        pa.field("topic", pa.string()),
    ]
)
CANONICAL_COLUMNS: tuple[str, ...] = tuple(CANONICAL_SCHEMA.names)
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "event_id": "unique id of the event; a resend repeats it",
    "user_id": "the user (int64 > 0)",
    "item_id": "the item (video) the event is about (int64 > 0)",
    "event_type": f"one of {', '.join(EVENT_TYPES)}",
    "watch_ms": "milliseconds watched (>= 0)",
    "item_duration_ms": "length of the item in milliseconds (> 0)",
    "ts": "when the event happened (UTC)",
    "device": "client platform, e.g. ios, android, web",
    "region": "the user's region",
    "topic": "the item's category",
    "source_file": "the landing-zone file the row came from",
}

# Text columns with a handful of distinct values: held dictionary-encoded (pandas categoricals),
# a code per row instead of a string per row.
LOW_CARDINALITY_COLUMNS: tuple[str, ...] = ("event_type", "device", "region", "topic", "source_file")


def with_low_cardinality_encoded(table: pa.Table) -> pa.Table:
    for name in LOW_CARDINALITY_COLUMNS:
        if name in table.column_names and not pa.types.is_dictionary(table.schema.field(name).type):
            table = table.set_column(table.schema.get_field_index(name), name, pc.dictionary_encode(table[name]))
    return table


def pandas_dtypes(schema: pa.Schema, required_ids: bool = False) -> dict[bytes, bytes]:
    """The schema metadata that makes pandas readers (the GX suites, the trainer's inputs) see
    integer columns as nullable Int64, not float64 where a value is missing; ids as plain int64
    where they are `required_ids` (cleaned events)."""
    empty = schema.empty_table().to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    if required_ids:
        empty = empty.astype({"user_id": "int64", "item_id": "int64"})
    return pa.Schema.from_pandas(empty, preserve_index=False).metadata
