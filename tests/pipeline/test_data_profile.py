"""data_profile: each partition's figures equal those computed from its cleaned table, and the
project's rollup follows the stored profiles, re-reading only partitions that changed."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from algo_platform.core.layout import ProjectLayout
from algo_platform.definitions import build_project_definitions
from algo_platform.ingest.datagen import generate
from algo_platform.profiles.overview import gini, overview
from algo_platform.profiles.rollup import ProfileStore
from tests.support.factories import PROJECT, make_project

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]
RATING = {"rating": "float64"}


def _ingest(defs, instance, first: str, last: str) -> dg.ExecuteInProcessResult:
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = defs.resolve_job_def(f"{PROJECT}_ingest_job").execute_in_process(instance=instance, tags=tags)
    assert result.success
    return result


def _counts(frame: pl.DataFrame, section: str, key: str = "key") -> dict:
    rows = frame.filter(pl.col("section") == section)
    return dict(zip(rows[key].to_list(), rows["value"].to_list(), strict=True))


def test_each_partitions_profile_is_its_cleaned_tables_figures_and_the_rollup_follows_changes(settings):
    project = make_project(data={"extra_columns": RATING, "feedback": {"column": "rating", "threshold": 3.0}})
    root = settings.layout.project(PROJECT).root
    generate(root, 3, 600, seed=3, defect_rate=0.05, end_date=dt.date(2026, 11, 20), ratings_column="rating")
    defs = build_project_definitions(project, settings)
    with dg.instance_for_test() as instance:
        result = _ingest(defs, instance, DAYS[0], DAYS[-1])
        cleaned_meta = {
            e.materialization.partition: e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.asset_key.path[-1] == "cleaned_events"
        }
        for day in DAYS:
            profile = pl.read_parquet(Path(root) / "data_profile" / f"{day}.parquet")
            events = pl.read_parquet(Path(root) / "cleaned_events" / f"{day}.parquet")
            assert _counts(profile, "events", "day") == {dt.date.fromisoformat(day): events.height}
            assert _counts(profile, "event_type") == dict(
                events.group_by(pl.col("event_type").cast(pl.String)).len().iter_rows()
            )
            assert _counts(profile, "user", "id") == dict(events.group_by("user_id").len().iter_rows())
            assert _counts(profile, "item", "id") == dict(events.group_by("item_id").len().iter_rows())
            hours = events.group_by(pl.format("{}-{}", pl.col("ts").dt.weekday() - 1, pl.col("ts").dt.hour())).len()
            assert _counts(profile, "hour_weekday") == dict(hours.iter_rows())
            ratings = events.group_by(pl.col("rating").round_sig_figs(2).cast(pl.String)).len()
            assert _counts(profile, "extra:rating") == dict(ratings.iter_rows())
            # What the ingest recorded: rows read and drops by reason, as cleaned_events' metadata says.
            metadata = cleaned_meta[day]
            assert _counts(profile, "rows_in", "section") == {"rows_in": metadata["rows_in"].value}
            dropped = {k.removeprefix("dropped_"): v.value for k, v in metadata.items()
                       if k.startswith("dropped_") and k != "dropped_by_reason" and v.value}  # fmt: skip
            assert _counts(profile, "dropped") == dropped and sum(dropped.values()) > 0
            assert set(_counts(profile, "quality")) == {"quality_score", "accuracy", "completeness", "relevance",
                                                        "timeliness"}  # fmt: skip

        # The run folded its partitions into the rollup; the page's totals are the tables' totals.
        store = ProfileStore(ProjectLayout(root))
        rollup = store.read()
        assert rollup.partitions == DAYS
        figures = overview(rollup.table)
        all_events = pl.concat([pl.read_parquet(Path(root) / "cleaned_events" / f"{d}.parquet") for d in DAYS])
        assert figures.totals["events"] == all_events.height
        assert figures.totals["users"] == all_events["user_id"].n_unique()
        per_user = all_events.group_by("user_id").len()["len"].to_numpy()
        assert abs(figures.ginis["user"] - gini(per_user)) < 1e-12

        # A late file for the first day: its partition is ingested again and only it is re-read.
        late = Path(root) / "landing" / "events" / DAYS[0] / "late.csv"
        late.write_text("user_id,item_id,ts\n" + "".join(f"{u},7,{DAYS[0]}T23:00:00Z\n" for u in range(1, 41)))
        before = dict(rollup.stamps)
        _ingest(defs, instance, DAYS[0], DAYS[0])
        after = store.read()
        assert {k for k in DAYS if after.stamps[k] != before[k]} == {DAYS[0]}
        first_day = overview(after.table).daily.filter(pl.col("day") == dt.date.fromisoformat(DAYS[0]))
        day_events = pl.read_parquet(Path(root) / "cleaned_events" / f"{DAYS[0]}.parquet").height
        assert first_day["events"].item() == day_events

    # A partition removed from storage leaves the rollup at the next refresh.
    (Path(root) / "data_profile" / f"{DAYS[1]}.parquet").unlink()
    assert store.refresh().partitions == [DAYS[0], DAYS[2]]
