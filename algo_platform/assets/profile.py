"""data_profile: each partition's cleaned events counted for the data page (algo_platform.profiles).

It runs in the ingest job after cleaned_events, reads the cleaned table once (only the columns it
counts) and the ingest's own figures (rows read, drops by reason, quality) from the
materializations of raw_events and cleaned_events, and the quarantine's reason files of its days.
Once its partitions are stored it folds them into the project's rollup, so the page finds it
current; the page refreshes the rollup itself when partitions changed since.
"""

import json

import dagster as dg
import polars as pl
from upath import UPath

from algo_platform.assets.days import DayResult, days_per_backfill_run, materialize_days, run_days
from algo_platform.assets.events import latest_metadata
from algo_platform.core.atomic import stored_parts
from algo_platform.core.layout import ProjectLayout
from algo_platform.core.project import DataSource
from algo_platform.ingest.quarantine import REASON_SUFFIX
from algo_platform.profiles.compute import QUALITY_DIMENSIONS, profile_of
from algo_platform.profiles.rollup import ProfileStore
from algo_platform.resources.io_managers import AS_PATH, read_table
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.project import ProjectResource
from algo_platform.resources.storage import PlatformStorage

# The columns a profile counts; extra columns are added per project.
COUNTED = ["user_id", "item_id", "event_type", "watch_ms", "item_duration_ms", "ts", "device", "region"]


def _events(path: UPath, columns: list[str]) -> pl.LazyFrame:
    """The stored cleaned table's counted columns: scanned in place on local storage, read otherwise."""
    parts = stored_parts(path)
    if path.protocol in ("", "file", "local"):
        scan = pl.scan_parquet([part.path for part in parts])
        present = scan.collect_schema().names()
        return scan.select([c for c in columns if c in present])
    table = read_table(path)
    return pl.from_arrow(table.select([c for c in columns if c in table.column_names])).lazy()


def _quarantined(layout: ProjectLayout, days: list[str]) -> list[tuple[str, str]]:
    """(day/file, reason) of each file the quarantine holds for `days`."""
    found = []
    for day in days:
        folder = layout.quarantine_day(day)
        if not folder.exists():
            continue
        for reason_file in sorted(folder.iterdir(), key=lambda p: p.name):
            if reason_file.name.endswith(REASON_SUFFIX) and not reason_file.name.startswith("."):
                reason = json.loads(reason_file.read_text())
                name = reason_file.name.removesuffix(REASON_SUFFIX)
                found.append((f"{day}/{name}", f"{reason.get('reason')}: {reason.get('detail')}"))
    return found


def _value(metadata: dict, key: str):
    entry = metadata.get(key)
    return None if entry is None else entry.value


def data_profile(context: dg.AssetExecutionContext, cleaned_events, storage: PlatformStorage, project: ProjectResource):
    """Per day: events, users, items, event types, watch ratio, devices, regions, hours, extra
    columns; per partition: rows read, drops by reason, quality, quarantined files."""
    project_key = context.asset_key.path[:-1]
    days = run_days(context)
    cleaned_meta = latest_metadata(context.instance, dg.AssetKey([*project_key, "cleaned_events"]), days)
    raw_meta = latest_metadata(context.instance, dg.AssetKey([*project_key, "raw_events"]), days)
    layout = ProjectLayout(storage.root)
    extra = dict(project.extra_columns)

    def profile(key: str, path: UPath) -> DayResult:
        period = project.calendar.period(key)
        cleaned, raw = cleaned_meta.get(key, {}), raw_meta.get(key, {})
        dropped = {name.removeprefix("dropped_"): int(_value(cleaned, name)) for name in cleaned
                   if name.startswith("dropped_") and name != "dropped_by_reason"}  # fmt: skip
        table = profile_of(
            _events(path, [*COUNTED, *extra]),
            extra,
            period.start,
            rows_in=_value(cleaned, "rows_in"),
            dropped=dropped,
            quality={name: _value(raw, name) for name in QUALITY_DIMENSIONS},
            quarantined=_quarantined(layout, list(period.days)),
        )
        sections = table.column("section").to_pylist()
        return DayResult(table, {"dagster/row_count": table.num_rows, "sections": len(set(sections))})

    yield from materialize_days(context, profile, cleaned_events)
    # The IO manager has stored the partitions (it writes as the output is yielded).
    try:
        ProfileStore(layout).refresh()
    except Exception as error:  # noqa: BLE001 - the page refreshes the rollup itself on its next request
        context.log.warning(f"the data page's rollup was not refreshed (the page will do it): {error}")


def build_profile_asset(partitions: PeriodPartitions, data: DataSource) -> dg.AssetsDefinition:
    return dg.asset(
        name="data_profile",
        partitions_def=partitions,
        backfill_policy=days_per_backfill_run(data.days_per_run),
        group_name="ingest",
        kinds={"polars", "parquet"},
        ins={"cleaned_events": dg.AssetIn(metadata=AS_PATH)},
        description="Each day's cleaned events counted for the data page (/platform/data/<project>).",
    )(data_profile)
