"""The nightly retraining schedule and the sensor that ingests new landing-zone files."""

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from algo_platform.core.calendar import parse_day
from algo_platform.core.project import Project
from algo_platform.core.settings import Settings
from algo_platform.ingest.folders import is_object_store
from algo_platform.ingest.landing import LandedFile, day_folders, landing_objects, scan_folder
from algo_platform.jobs.project_jobs import AssetJob
from algo_platform.resources.partitions import partition_of
from algo_platform.resources.storage import PlatformStorage

_now_ns = time.time_ns  # the sensor's clock, replaceable in tests
# A landing file written in place is read once it has been unmodified this long: the settings'
# default, used when no value is passed (the code location passes ALGO_PLATFORM_LANDING_SETTLE_SECONDS).
SETTLE_SECONDS = Settings.landing_settle_seconds
CURSOR_VERSION = 2
# On an object store a tick lists, in one request per 1,000 keys, only the day folders from this
# many days before the latest complete day (and any day waiting to settle); a full listing, which
# catches a late file for an older day, runs once per FULL_SWEEP_SECONDS.
LOOKBACK_DAYS = 7
FULL_SWEEP_SECONDS = 3600


def folder_signature(files: list[LandedFile]) -> str:
    """Stands for every file of a day folder: any file added, replaced or rewritten changes it."""
    listing = "\n".join(sorted(f"{f.name}\0{f.signature}" for f in files))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


@dataclass
class LandingScan:
    """One look at the landing zone: the days to ingest (day -> folder signature), the next
    cursor, and why other days were left for a later tick."""

    to_ingest: dict[str, str] = field(default_factory=dict)
    file_counts: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    newly_waiting: list[str] = field(default_factory=list)  # days whose reason to wait is new: logged once
    cursor: str = ""

    def by_partition(self, partitions_def: dg.PartitionsDefinition | None) -> dict[str, tuple[str, int]]:
        """The partitions to ingest (a week's or a month's changed days together): key -> (signature, files)."""
        grouped: dict[str, list[str]] = {}
        for day in sorted(self.to_ingest):
            grouped.setdefault(partition_of(day, partitions_def), []).append(day)
        if all(days == [key] for key, days in grouped.items()):
            return {day: (self.to_ingest[day], self.file_counts[day]) for day in self.to_ingest}
        return {
            key: (
                hashlib.sha256("".join(f"{d}:{self.to_ingest[d]}" for d in days).encode()).hexdigest()[:16],
                sum(self.file_counts[d] for d in days),
            )
            for key, days in grouped.items()
        }


def scan_landing_zone(
    root: str,
    cursor: str | None,
    partitions_def: dg.PartitionsDefinition | None = None,
    settle_seconds: int | None = None,
) -> LandingScan:
    """Days whose files changed since the cursor (a new file, or one rewritten in place).

    A day waits, without holding up the others, while it is not a partition yet (today, a future
    date, a day before the partition start) or while a file in it was written less than
    `settle_seconds` ago (a writer that writes in place may not be done)."""
    settle = SETTLE_SECONDS if settle_seconds is None else settle_seconds
    scan_ns = _now_ns()
    state = json.loads(cursor) if cursor else {}
    if state.get("version") != CURSOR_VERSION:
        state = {"version": CURSOR_VERSION, "days": {}}
    seen: dict[str, str] = state["days"]
    scan = LandingScan()
    settling: list[str] = []
    for name, list_files in _day_folders(root, state, scan_ns):
        day = name
        try:
            parse_day(day)
        except ValueError:
            continue  # not a day folder; upload never writes one
        key = partition_of(day, partitions_def)
        if partitions_def is not None and not partitions_def.has_partition_key(key):
            held = day if key == day else f"{day} (in {key})"
            scan.waiting[day] = f"{held} is not a partition (yet); it is ingested once it is one"
            continue
        files = list_files()
        if not files:
            continue
        fresh = [f.name for f in files if scan_ns - f.modified_ns < settle * 1_000_000_000]
        if fresh:
            scan.waiting[day] = f"{', '.join(fresh[:3])} changed less than {settle}s ago; waiting for it to settle"
            settling.append(day)
            continue
        signature = folder_signature(files)
        if seen.get(day) != signature:
            scan.to_ingest[day], scan.file_counts[day] = signature, len(files)
            seen[day] = signature
    previously = state.get("waiting", {})
    scan.newly_waiting = [day for day, reason in scan.waiting.items() if previously.get(day) != reason]
    state["waiting"] = scan.waiting
    state["settling"] = settling
    scan.cursor = json.dumps(state, sort_keys=True)
    return scan


def _day_folders(root: str, state: dict, scan_ns: int) -> list[tuple[str, Callable[[], list[LandedFile]]]]:
    """(folder name, its files) for the day folders this tick looks at.

    A local landing zone is read folder by folder (a directory read each; links are not followed).
    An object store is listed in one go: the recent days and the days waiting to settle, or every
    day once per FULL_SWEEP_SECONDS (the cursor keeps the time of the last full listing). A folder
    that is not a partition waits for midnight (recent anyway) or for `partitions_start` to move
    (found by the next full listing), so it does not widen every tick's listing."""
    if not is_object_store(root):
        return [(folder.name, lambda folder=folder: scan_folder(folder)) for folder in day_folders(root)]
    since: str | None = None
    if scan_ns - state.get("swept_ns", 0) < FULL_SWEEP_SECONDS * 1_000_000_000:
        today = dt.datetime.fromtimestamp(scan_ns / 1e9, dt.UTC).date()
        recent = (today - dt.timedelta(days=LOOKBACK_DAYS + 1)).isoformat()
        since = min([recent, *state.get("settling", [])])
    else:
        state["swept_ns"] = scan_ns
    return [(day, lambda files=files: files) for day, files in landing_objects(root, since).items()]


def build_automation(
    project: Project,
    ingest_job: AssetJob,
    retrain_job: AssetJob,
    sensor_interval_seconds: int = 30,
    settle_seconds: int = SETTLE_SECONDS,
) -> tuple[dg.ScheduleDefinition, dg.SensorDefinition]:
    """The project's retraining schedule and landing-zone sensor (on or off as its file says)."""

    @dg.schedule(
        name=f"{project.name}_nightly_retraining",
        job=retrain_job,
        cron_schedule=project.schedule.cron,
        execution_timezone=project.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if project.schedule.enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"{project.schedule.cron} ({project.schedule.timezone}): retrain on the window ending at the "
        "latest complete partition.",
    )
    def nightly_retraining(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = project.calendar.latest_complete(context.scheduled_execution_time)
        # One key per partition: a re-evaluated tick does not train twice.
        return dg.RunRequest(run_key=f"nightly:{day}", partition_key=day, tags={"algo-platform/trigger": "schedule"})

    @dg.sensor(
        name=f"{project.name}_landing_zone_sensor",
        job=ingest_job,
        minimum_interval_seconds=sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if project.sensor.enabled else dg.DefaultSensorStatus.STOPPED,
        description=f"Requests {ingest_job.name} for every day whose landing-zone files were added or changed.",
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, storage: PlatformStorage) -> dg.SensorResult:
        scan = scan_landing_zone(storage.root, context.cursor, ingest_job.partitions_def, settle_seconds)
        for day in scan.newly_waiting:
            context.log.info(f"skipped {day}: {scan.waiting[day]}")
        requests = [
            dg.RunRequest(
                # The key stands for the partition's changed files as they are now, so a re-evaluated
                # tick or a restarted daemon asks once, and a file added or rewritten later asks again.
                run_key=f"ingest:{key}:{signature}",
                partition_key=key,
                tags={"algo-platform/trigger": "landing_zone_sensor", "algo-platform/landing-files": str(files)},
            )
            for key, (signature, files) in scan.by_partition(ingest_job.partitions_def).items()
        ]
        return dg.SensorResult(run_requests=requests, cursor=scan.cursor)

    return nightly_retraining, landing_zone_sensor


def build_reaper_sensor(project: Project, namespace: str, interval_seconds: int = 300) -> dg.SensorDefinition:
    """On Kubernetes: every few minutes, delete the pods, Jobs, Services and Kueue workloads that the
    project's ended runs left behind (resources/k8s_reaper.py)."""

    @dg.sensor(
        name=f"{project.name}_k8s_reaper",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Deletes what {project.name}'s ended runs left in namespace {namespace} "
        "(trainer pods, multi-node Jobs, Services, Kueue workloads).",
    )
    def k8s_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        from algo_platform.resources.k8s_reaper import Apis, reap

        reaped = reap(context.instance, Apis.connect(), namespace, project.name)
        for name in reaped:
            context.log.info(f"deleted {name}: its run has ended")
        return dg.SkipReason(f"deleted {len(reaped)} objects of ended runs" if reaped else "nothing left behind")

    return k8s_reaper
