"""raw_events and cleaned_events: from landing-zone files to a table a model may trust."""

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa

from algo_platform.assets.partitions import daily_partitions
from algo_platform.landing import landing_dir, load_landing_day
from algo_platform.resources.storage import PlatformStorage
from algo_platform.schema import EVENT_TYPES

# Int64 (nullable) keeps missing ids visible as <NA> instead of silently turning ids into floats.
_NULLABLE_INTEGERS = {pa.int64(): pd.Int64Dtype()}

# Clock skew tolerated before an event counts as "from the future".
FUTURE_TOLERANCE = dt.timedelta(minutes=5)

DROP_REASONS = (
    "missing_user_id",
    "missing_item_id",
    "missing_ts",
    "unknown_event_type",
    "negative_watch_ms",
    "invalid_item_duration",
    "future_timestamp",
    "outside_partition_day",
    "duplicate_event_id",
)


def _markdown(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


@dg.asset(partitions_def=daily_partitions, group_name="ingest", kinds={"pandas", "parquet"})
def raw_events(context: dg.AssetExecutionContext, storage: PlatformStorage) -> dg.Output[pd.DataFrame]:
    """Every landing-zone file of the day, mapped to the canonical columns; bad files quarantined."""
    day = context.partition_key
    load = load_landing_day(storage.root, day)
    for bad in load.quarantined:
        context.log.warning(f"quarantined {bad.file}: {bad.detail}")
    if load.table.num_rows == 0:
        folder = landing_dir(storage.root, day)
        if load.quarantined:
            reasons = "; ".join(f"{q.file}: {q.detail}" for q in load.quarantined)
            message = f"{day}: every landing file was quarantined, nothing to load ({reasons})"
        else:
            message = f"{day}: no event files in {folder}; upload some with `algo-platform upload FILE --date {day}`"
        raise dg.Failure(description=message)
    frame = load.table.to_pandas(types_mapper=_NULLABLE_INTEGERS.get)
    quarantined = pd.DataFrame([q.__dict__ for q in load.quarantined], columns=["file", "reason", "detail"])
    return dg.Output(
        frame,
        metadata={
            "rows": len(frame),
            "files_loaded": len(load.loaded_files),
            "files_quarantined": len(load.quarantined),
            "loaded_files": dg.MetadataValue.json(load.loaded_files),
            "quarantined_files": dg.MetadataValue.md(
                quarantined.to_markdown(index=False) if len(quarantined) else "none"
            ),
            "duplicate_files_skipped": dg.MetadataValue.json(load.duplicate_files),
            "preview": _markdown(frame),
        },
    )


def clean_events(raw: pd.DataFrame, day: dt.date, now: dt.datetime) -> tuple[pd.DataFrame, dict[str, int]]:
    """Normalise types, then drop invalid rows; each dropped row is counted under its first reason."""
    frame = raw.copy()
    event_type = frame["event_type"].astype("string").str.strip().str.lower()
    # Logs without an event type (e.g. a ratings export) record that the user consumed the item.
    frame["event_type"] = event_type.fillna("play")
    for column in ("device", "region", "topic"):
        frame[column] = frame[column].astype("string").str.strip().str.lower().fillna("unknown")

    day_start = pd.Timestamp(day, tz="UTC")
    checks: dict[str, pd.Series] = {
        "missing_user_id": frame["user_id"].isna(),
        "missing_item_id": frame["item_id"].isna(),
        "missing_ts": frame["ts"].isna(),
        "unknown_event_type": ~frame["event_type"].isin(EVENT_TYPES),
        "negative_watch_ms": frame["watch_ms"].fillna(0) < 0,
        "invalid_item_duration": frame["item_duration_ms"].fillna(1) <= 0,
        "future_timestamp": frame["ts"] > pd.Timestamp(now) + FUTURE_TOLERANCE,
        "outside_partition_day": (frame["ts"] < day_start) | (frame["ts"] >= day_start + pd.Timedelta(days=1)),
    }
    dropped = pd.Series(False, index=frame.index)
    counts: dict[str, int] = {}
    for reason, failing in checks.items():
        failing = failing.fillna(False).astype(bool) & ~dropped
        counts[reason] = int(failing.sum())
        dropped |= failing
    frame = frame[~dropped]
    duplicate = frame["event_id"].duplicated(keep="first")
    counts["duplicate_event_id"] = int(duplicate.sum())
    frame = frame[~duplicate]

    cleaned = frame.astype({"user_id": "int64", "item_id": "int64"}).sort_values(["user_id", "ts"], kind="stable")
    cleaned["event_type"] = pd.Categorical(cleaned["event_type"], categories=EVENT_TYPES)
    return cleaned.drop(columns=["source_file"], errors="ignore").reset_index(drop=True), counts


@dg.asset(partitions_def=daily_partitions, group_name="ingest", kinds={"pandas", "parquet"})
def cleaned_events(context: dg.AssetExecutionContext, raw_events: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Deduplicated, valid, type-normalised events of the day, sorted by user and time."""
    day = dt.date.fromisoformat(context.partition_key)
    cleaned, dropped = clean_events(raw_events, day, now=dt.datetime.now(dt.UTC))
    breakdown = pd.DataFrame({"reason": list(dropped), "rows": list(dropped.values())})
    return dg.Output(
        cleaned,
        metadata={
            "rows_in": len(raw_events),
            "rows_kept": len(cleaned),
            "rows_dropped": len(raw_events) - len(cleaned),
            "kept_share": round(len(cleaned) / max(len(raw_events), 1), 4),
            **{f"dropped_{reason}": count for reason, count in dropped.items()},
            "dropped_by_reason": dg.MetadataValue.md(breakdown.to_markdown(index=False)),
            "users": int(cleaned["user_id"].nunique()),
            "items": int(cleaned["item_id"].nunique()),
            "preview": _markdown(cleaned),
        },
    )
