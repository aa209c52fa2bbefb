"""The nightly retraining schedule and the sensor that ingests new landing-zone files."""

import datetime as dt
import hashlib
import json
import time

import dagster as dg
from upath import UPath

from algo_platform.jobs import ingest_job, retrain_job
from algo_platform.landing import MAPPING_SUFFIX, validate_day
from algo_platform.resources.storage import PlatformStorage
from algo_platform.settings import load_settings

_settings = load_settings()


def latest_complete_day(moment: dt.datetime) -> str:
    """The last UTC day that has fully ended at `moment` (partitions are UTC days)."""
    return (moment.astimezone(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


@dg.schedule(
    job=retrain_job,
    cron_schedule="0 2 * * *",
    execution_timezone=_settings.schedule_timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="02:00: retrain on the window ending at the latest complete day.",
)
def nightly_retraining(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = latest_complete_day(context.scheduled_execution_time)
    # One key per day: a re-evaluated tick does not train twice.
    return dg.RunRequest(run_key=f"nightly:{day}", partition_key=day, tags={"algo-platform/trigger": "schedule"})


# A folder time this recent may still be shared by a file landing in the same clock tick, so
# it is not trusted to mean "unchanged" on the next tick.
SETTLED_NS = 2_000_000_000
_now_ns = time.time_ns  # the sensor's clock, replaceable in tests


def _landed_ns(path: UPath) -> int:
    """When a file arrived in its folder. ctime changes on rename, so a file written under a
    temporary name and renamed into place counts from the rename, not from when it was written."""
    stat = path.stat()
    return max(getattr(stat, "st_ctime_ns", 0), getattr(stat, "st_mtime_ns", 0)) or int(stat.st_mtime * 1e9)


def _folder_state(folder: UPath, known: dict | None, scan_ns: int) -> tuple[dict, list[UPath]]:
    """New data files of one day folder since `known`, and the folder's new state.

    A file is new when it landed after the newest one seen, or at the same instant under a name
    not seen yet (several files can share a timestamp).
    """
    files = [
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(MAPPING_SUFFIX)
    ]  # fmt: skip
    stamped = [(_landed_ns(p), p) for p in files]
    latest, at_latest = (known or {}).get("latest_ns", -1), set((known or {}).get("at_latest", []))
    new = [p for landed, p in stamped if landed > latest or (landed == latest and p.name not in at_latest)]
    newest = max([landed for landed, _ in stamped], default=latest)
    names_at_newest = {p.name for landed, p in stamped if landed == newest}
    if newest == latest:
        names_at_newest |= at_latest
    folder_ns = _landed_ns(folder)
    settled = scan_ns - folder_ns > SETTLED_NS
    return {"dir_ns": folder_ns if settled else None, "latest_ns": newest, "at_latest": sorted(names_at_newest)}, new


def scan_landing_zone(root: str, cursor: str | None) -> tuple[dict[str, list[str]], str]:
    """Days with new files (day -> new file names) and the next cursor.

    Each tick stats the day folders and lists only those that changed, so its cost grows with
    the number of days and of new files, not with every file ever landed. (On object stores
    without folder times every folder is listed.)
    """
    scan_ns = _now_ns()
    state: dict[str, dict] = json.loads(cursor) if cursor else {}
    events_root = UPath(root) / "landing" / "events"
    if not events_root.exists():
        return {}, json.dumps(state)
    new_by_day: dict[str, list[str]] = {}
    for folder in sorted(events_root.iterdir(), key=lambda p: p.name):
        try:
            day = validate_day(folder.name)
        except ValueError:
            continue  # not a day folder; upload never writes one
        known = state.get(day)
        if known is not None and known.get("dir_ns") is not None and known["dir_ns"] == _landed_ns(folder):
            continue
        state[day], new_files = _folder_state(folder, known, scan_ns)
        if new_files:
            new_by_day[day] = sorted(p.name for p in new_files)
    return new_by_day, json.dumps(state, sort_keys=True)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=_settings.sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests ingest_job for every day whose landing-zone folder got new files.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, storage: PlatformStorage) -> dg.SensorResult:
    new_by_day, cursor = scan_landing_zone(storage.root, context.cursor)
    requests = [
        dg.RunRequest(
            # The key stands for the day's new files, so a re-evaluated tick or a restarted daemon
            # asks for each arrival once.
            run_key=f"ingest:{day}:{hashlib.sha256(chr(0).join(names).encode()).hexdigest()[:16]}",
            partition_key=day,
            tags={"algo-platform/trigger": "landing_zone_sensor", "algo-platform/new-files": str(len(names))},
        )
        for day, names in new_by_day.items()
    ]
    return dg.SensorResult(run_requests=requests, cursor=cursor)
