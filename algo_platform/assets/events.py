"""raw_events and cleaned_events: from landing-zone files to a table a model may trust."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.assets.days import (
    DayResult,
    check_each_day,
    days_per_backfill_run,
    materialize_days,
    run_days,
    suite_each_day,
)
from algo_platform.assets.metadata import as_metadata
from algo_platform.core.calendar import Period
from algo_platform.core.layout import ProjectLayout
from algo_platform.core.project import DataSource
from algo_platform.core.schema import REQUIRED_COLUMNS, pandas_dtypes
from algo_platform.engines.polars import large_day
from algo_platform.engines.polars.cleaning import clean_parquet, clean_table, raw_collisions_of_file
from algo_platform.engines.polars.large_day import STREAMING, clean_file
from algo_platform.ingest.landing import LandingFileChanged, write_landing_day
from algo_platform.quality.contracts import CLEANED_SUITE, RAW_SUITE, cleaned_events_rules, raw_events_rules
from algo_platform.quality.dimensions import (
    distribution_profile,
    population_stability_index,
    quality_dimensions,
)
from algo_platform.quality.summaries import all_rows_dropped, cleaned_events_summary
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.io_managers import AS_PATH, StagedParquet, StoredDays, local_file
from algo_platform.resources.partitions import PeriodPartitions, record_grain
from algo_platform.resources.project import ProjectResource
from algo_platform.resources.storage import PlatformStorage

# Int64 (nullable) keeps missing ids visible as <NA> instead of silently turning ids into floats.
_NULLABLE_INTEGERS = {pa.int64(): pd.Int64Dtype()}


RAW_QUALITY_SCORE = "quality_score_above_threshold"
RAW_NO_QUARANTINE = "no_files_quarantined"
CLEANED_DRIFT = "distribution_drift"


def _head(events: pa.Table | pl.LazyFrame, rows: int = 10) -> pd.DataFrame:
    """The first rows, for the preview in the materialization."""
    return (
        events.slice(0, rows).to_pandas() if isinstance(events, pa.Table) else events.head(rows).collect().to_pandas()
    )


def _preview(events: pa.Table | pl.LazyFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(_head(events).to_markdown(index=False))


def _quality_metadata(dims: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 6) for name, value in dims.items()}


def raw_events(
    context: dg.AssetExecutionContext, storage: PlatformStorage, data_quality: DataQuality, project: ProjectResource
):
    """Every landing-zone file of the partition's days, mapped to the canonical columns; bad files quarantined."""
    record_grain(ProjectLayout(storage.root), project.calendar.grain)
    yield from materialize_days(
        context, lambda day, _: DayResult(*_raw_day(context, day, storage, data_quality, project))
    )


def _raw_day(
    context: dg.AssetExecutionContext, day: str, storage: PlatformStorage, data_quality: DataQuality, project
) -> tuple[StagedParquet, dict, list[dg.AssetCheckResult]]:
    """The day's landing files written to a staged Parquet file one at a time (the day is never
    whole in memory), then described from that file."""
    staged = StagedParquet.scratch("raw_events.parquet")
    try:
        return _describe_raw_day(context, day, staged, storage, data_quality, project)
    except BaseException:
        StagedParquet.discard(staged)
        raise


def _describe_raw_day(
    context: dg.AssetExecutionContext,
    day: str,
    staged: Path,
    storage: PlatformStorage,
    data_quality: DataQuality,
    project,
) -> tuple[StagedParquet, dict, list[dg.AssetCheckResult]]:
    try:
        period = project.calendar.period(day)
        load = write_landing_day(storage.root, period.days, staged, project.extra_columns)
    except LandingFileChanged as changed:
        raise dg.Failure(description=f"{day}: {changed}") from None
    table = StagedParquet.written(staged)
    for bad in load.quarantined:
        context.log.warning(f"quarantined {bad.file}: {bad.detail}")
    if table.num_rows == 0 and load.quarantined:
        reasons = "; ".join(f"{q.file}: {q.detail}" for q in load.quarantined)
        raise dg.Failure(description=f"{day}: every landing file was quarantined, nothing to load ({reasons})")
    if table.num_rows == 0 and len(run_days(context)) == 1:
        # Sparse logs have days without events: an empty partition, so a window can tell it from a missing day.
        folder = ProjectLayout(storage.root).landing_day(period.days[0])
        context.log.info(
            f"{period}: no events in {folder if len(period.days) == 1 else f'the landing folders {period}'}; the "
            f"partition is recorded as empty (to add events: `algo-platform upload FILE --project {project.name} "
            f"--date {period.days[0]}`)"
        )
    events = pl.scan_parquet(staged)
    colliding = raw_collisions_of_file(staged)
    if colliding:
        positions = pl.Series(colliding, dtype=pl.UInt32).implode()
        files = events.with_row_index("_row").filter(pl.col("_row").is_in(positions)).select("source_file")
        files = sorted(set(files.collect()["source_file"].cast(pl.String).to_list()))
        context.log.warning(
            f"{len(colliding):,} rows reuse an event_id that an earlier-arriving file holds with other content "
            f"(in {', '.join(files)}); the first arrival is kept and they count against accuracy"
        )
    quarantined = pd.DataFrame([q.__dict__ for q in load.quarantined], columns=["file", "reason", "detail"])
    dims = quality_dimensions(events, period, dt.datetime.now(dt.UTC), data_quality.allowed_lateness, colliding)
    metadata = {
        **_quality_metadata(dims),
        # Completeness scores the required columns only: an optional one a source lacks is no defect.
        "completeness_columns": ", ".join(REQUIRED_COLUMNS),
        "rows": table.num_rows,
        "files_loaded": len(load.loaded_files),
        "files_quarantined": len(load.quarantined),
        "loaded_files": dg.MetadataValue.json(load.loaded_files),
        "quarantined_files": dg.MetadataValue.md(quarantined.to_markdown(index=False) if len(quarantined) else "none"),
        "duplicate_files_skipped": dg.MetadataValue.json(load.duplicate_files),
        "event_id_collisions": len(colliding),
        # What this ingest read: a file that changes later is ingested again by the sensor.
        "file_versions": dg.MetadataValue.json(load.file_versions),
        "preview": _preview(events),
        "dagster/row_count": table.num_rows,
    }
    score, threshold = dims["quality_score"], data_quality.quality_threshold
    checks = [
        dg.AssetCheckResult(
            check_name=RAW_QUALITY_SCORE,
            passed=score >= threshold,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"quality score {score:.4f} {'>=' if score >= threshold else '<'} threshold {threshold}",
            metadata={**_quality_metadata(dims), "threshold": threshold},
        ),
        dg.AssetCheckResult(
            check_name=RAW_NO_QUARANTINE,
            passed=not load.quarantined,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{q.file}: {q.reason}" for q in load.quarantined) or "no file quarantined",
            metadata={
                "files_quarantined": len(load.quarantined),
                "files": dg.MetadataValue.json([q.__dict__ for q in load.quarantined]),
            },
        ),
    ]
    return table, metadata, checks


def clean_events(raw: pd.DataFrame | pa.Table, day: dt.date, now: dt.datetime) -> tuple[pd.DataFrame, dict[str, int]]:
    """`clean_table` (polars) on an Arrow table or a pandas frame; the cleaned events as pandas (the asset's output)."""
    if isinstance(raw, pd.DataFrame):
        raw = pa.Table.from_pandas(raw, preserve_index=False)
    cleaned, counts = clean_table(raw, day, now)
    return events_frame(cleaned), counts


def events_frame(events: pa.Table) -> pd.DataFrame:
    """Cleaned events as pandas: ids as int64, optional durations as nullable Int64, types categorical.

    Consumes `events`: each Arrow column is freed once converted (the table is unusable
    afterwards), so the cleaned table and its pandas copy are never both whole in memory."""
    frame = events.to_pandas(types_mapper=_NULLABLE_INTEGERS.get, self_destruct=True, split_blocks=True)
    return frame.astype({"user_id": "int64", "item_id": "int64"})


def cleaned_events(context: dg.AssetExecutionContext, raw_events, data_quality: DataQuality, project: ProjectResource):
    """Deduplicated, valid, type-normalised events of the partition, sorted by user and time."""
    now = dt.datetime.now(dt.UTC)

    def clean(day: str, raw_path: UPath) -> DayResult:
        with local_file(raw_path) as raw:
            return DayResult(*clean_day(context, project.calendar.period(day), raw, now, data_quality))

    yield from materialize_days(context, clean, raw_events)


def clean_day(
    context: dg.AssetExecutionContext, day: dt.date | Period, raw: Path, now: dt.datetime, data_quality: DataQuality
) -> tuple[pa.Table | StagedParquet, dict]:
    """The raw day at `raw` cleaned in memory, or in parts (Parquet to Parquet) when it has more rows
    than `large_day.LARGEST_DAY_IN_MEMORY`; the cleaned table and the step's metadata."""
    rows_in = pq.read_metadata(raw).num_rows
    if rows_in > large_day.LARGEST_DAY_IN_MEMORY:
        context.log.info(
            f"{day}: {rows_in:,} raw rows, more than {large_day.LARGEST_DAY_IN_MEMORY:,}: cleaning in parts"
        )
        staged = StagedParquet.scratch("cleaned_events.parquet")
        try:
            dropped = clean_file(raw, staged, day, now)
        except BaseException:
            StagedParquet.discard(staged)
            raise
        cleaned, events = StagedParquet.written(staged), pl.scan_parquet(staged)
        how = f"in parts of {large_day.ROWS_PER_PART:,} rows, Parquet to Parquet"
    else:
        how = "in memory"
        cleaned, dropped = clean_parquet(raw, day, now)
        cleaned = cleaned.replace_schema_metadata(pandas_dtypes(cleaned.schema, required_ids=True))
        events = pl.from_arrow(cleaned.select(_SUMMARISED)).lazy()
    rows_kept = cleaned.num_rows
    if rows_in and not rows_kept:
        raise dg.Failure(description=all_rows_dropped(day, rows_in, dropped))
    distinct = events.select(pl.col("user_id").n_unique(), pl.col("item_id").n_unique()).collect(engine=STREAMING)
    summary = cleaned_events_summary(
        rows_in=rows_in,
        rows_kept=rows_kept,
        dropped=dropped,
        dimensions=quality_dimensions(events, day, now, data_quality.allowed_lateness),
        profile=distribution_profile(events),
        users=distinct["user_id"].item(),
        items=distinct["item_id"].item(),
        preview=_head(cleaned if isinstance(cleaned, pa.Table) else events),
    )
    return cleaned, {"cleaned": how, **as_metadata(summary)}


# The columns the quality dimensions, the profile and the counts of users and items read.
_SUMMARISED = ["user_id", "item_id", "event_type", "watch_ms", "item_duration_ms", "ts"]


def raw_events_suite(
    context: dg.AssetCheckExecutionContext,
    raw_events: StoredDays,
    data_quality: DataQuality,
    project: ProjectResource,
):
    """Great Expectations suite on the raw table: structure (hard), defect counts (soft)."""
    rules = raw_events_rules(list(project.extra_columns))
    yield from suite_each_day(context, data_quality, raw_events, lambda first, last: rules, RAW_SUITE)


def cleaned_events_suite(
    context: dg.AssetCheckExecutionContext,
    cleaned_events: StoredDays,
    data_quality: DataQuality,
    project: ProjectResource,
):
    """Great Expectations suite on the cleaned table; a hard failure stops everything downstream."""

    def rules(first: str, last: str) -> list:
        calendar = project.calendar
        return cleaned_events_rules(calendar.period(first), calendar.period(last), project.extra_columns)

    yield from suite_each_day(context, data_quality, cleaned_events, rules, CLEANED_SUITE)


def latest_metadata(instance: dg.DagsterInstance, asset_key: dg.AssetKey, days: list[str]) -> dict[str, dict]:
    """The newest materialization metadata of each of `days` (one query; this run's are the newest)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=days), limit=len(days)
    ).records
    latest: dict[str, dict] = {}
    for record in records:  # newest first
        latest.setdefault(record.partition_key, record.asset_materialization.metadata)
    return latest


def cleaned_events_drift(context: dg.AssetCheckExecutionContext, data_quality: DataQuality, project: ProjectResource):
    """Population stability index of event-type mix, watch ratio and events per user vs the previous partition."""
    days = run_days(context)
    key = context.check_specs[0].asset_key
    calendar = project.calendar
    previous = {day: calendar.period_of(calendar.period(day).start - dt.timedelta(days=1)).key for day in days}
    metadata = {
        **latest_metadata(context.instance, key, [previous[days[0]]]),
        **latest_metadata(context.instance, key, days),
    }
    yield from check_each_day(
        context,
        dict.fromkeys(days),
        lambda day, _: _drift_vs_previous(day, previous[day], metadata, data_quality),
    )


def _drift_vs_previous(
    day: str, previous_day: str, metadata: dict[str, dict], data_quality: DataQuality
) -> dg.AssetCheckResult:
    current, previous = metadata.get(day, {}), metadata.get(previous_day, {})
    for which, values in ((day, current), (previous_day, previous)):
        if "profile" not in values:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"no profile for {which}; nothing to compare",
            )
        rows = values["rows_kept"].value if values.get("rows_kept") is not None else None
        if rows is not None and rows < data_quality.drift_min_rows:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{rows} events on {which}, fewer than {data_quality.drift_min_rows}: too few to compare "
                "distributions (DataQuality.drift_min_rows)",
            )
    current, previous = current["profile"].value, previous["profile"].value
    psi = {column: round(population_stability_index(previous[column], current[column]), 4) for column in current}
    drifted = {column: value for column, value in psi.items() if value > data_quality.drift_psi_threshold}
    return dg.AssetCheckResult(
        passed=not drifted,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"drift vs {previous_day} in {', '.join(drifted)}" if drifted else f"stable vs {previous_day}"),
        metadata={
            **{f"psi_{column}": value for column, value in psi.items()},
            "threshold": data_quality.drift_psi_threshold,
            "compared_with": previous_day,
        },
    )


def build_ingest_assets(partitions: PeriodPartitions, data: DataSource, with_cleaning: bool = True) -> list:
    """raw_events and (on the polars engine) cleaned_events of one project, with their checks, on its days."""
    backfill_policy = days_per_backfill_run(data.days_per_run)
    raw = dg.asset(
        partitions_def=partitions,
        backfill_policy=backfill_policy,
        group_name="ingest",
        kinds={"pyarrow", "polars", "parquet"},
        check_specs=[
            # partitions_def: the results belong to the run's day, not to the asset as a whole.
            dg.AssetCheckSpec(
                RAW_QUALITY_SCORE,
                asset="raw_events",
                blocking=True,
                partitions_def=partitions,
                description="accuracy × completeness × relevance × timeliness is at least the threshold",
            ),
            dg.AssetCheckSpec(
                RAW_NO_QUARANTINE,
                asset="raw_events",
                partitions_def=partitions,
                description="every landing file of the day could be loaded",
            ),
        ],
    )(raw_events)
    cleaned = dg.asset(
        partitions_def=partitions,
        backfill_policy=backfill_policy,
        group_name="ingest",
        kinds={"polars", "parquet"},
        ins={"raw_events": dg.AssetIn(metadata=AS_PATH)},
    )(cleaned_events)
    raw_checks = [dg.asset_check(asset=raw, name=RAW_SUITE, blocking=True, partitions_def=partitions)(raw_events_suite)]
    if not with_cleaning:
        return [raw, *raw_checks]
    return [
        raw,
        cleaned,
        *raw_checks,
        dg.asset_check(asset=cleaned, name=CLEANED_SUITE, blocking=True, partitions_def=partitions)(
            cleaned_events_suite
        ),
        dg.asset_check(asset=cleaned, name=CLEANED_DRIFT, partitions_def=partitions)(cleaned_events_drift),
    ]
