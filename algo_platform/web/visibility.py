"""What one user may read: Dagster's workspace and instance, cut down to the projects they hold a role on.

The webserver builds a request context for every request and websocket (server.py); for a user
who is not a platform admin that context gets:

- a workspace of only their projects' code locations, so the asset catalog, the asset graph,
  jobs, schedules, sensors and search show nothing of other teams;
- an instance whose run storage answers only for runs tagged `algo_platform/project` with one of
  their projects (the webserver sets that tag on every launch; a run without it is for platform
  admins only), whose event log storage answers only for those runs and for asset keys under
  their projects' names (materialization metadata, such as the preview of a day's first rows,
  included), whose step logs are those runs' only, and whose schedule storage holds only their
  code locations' schedule and sensor states and ticks.

Everything Dagster's GraphQL schema and its download routes read goes through these storages,
whichever transport asked (GET, POST, the websocket's subscriptions), so nothing is hidden by
leaving out links. Writes are not filtered here: they are judged by policy.py before they reach
Dagster.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._core.workspace.workspace import CurrentWorkspace  # the workspace a request context reads
from dagster_shared.record import copy

from algo_platform.core.project import PROJECT_TAG

NO_PROJECT = "\x00none"  # a tag value no run carries: "match nothing" for a filter with no project left
TAGS_FROM_RUNS = 5000
OTHER_PROJECT = "(another project)"
MAX_LOG_KEY_PART = 255
NO_LOG_KEY = ["no-such-run", "none"]  # a key of no log: what a refused key reads instead (a plain path)


def asset_project(key: dg.AssetKey | None) -> str | None:
    """Every asset of a project is keyed under the project's name (location.in_project)."""
    return key.path[0] if key is not None and key.path else None


class _Delegate:
    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ScopedRunStorage(_Delegate):
    """The run storage as seen by a user of `projects`: runs (and backfills) of those projects only."""

    def __init__(self, inner: Any, projects: frozenset[str]):
        super().__init__(inner)
        self.projects = projects

    def _scope(self, filters: dg.RunsFilter | None) -> dg.RunsFilter:
        filters = filters or dg.RunsFilter()
        tags = dict(filters.tags or {})
        wanted = tags.get(PROJECT_TAG)
        asked = sorted(self.projects) if wanted is None else [wanted] if isinstance(wanted, str) else list(wanted)
        tags[PROJECT_TAG] = [p for p in asked if p in self.projects] or [NO_PROJECT]
        return copy(filters, tags=tags)

    def get_runs(self, filters=None, cursor=None, limit=None, bucket_by=None, ascending=False):
        return self._inner.get_runs(self._scope(filters), cursor, limit, bucket_by, ascending)

    def get_run_ids(self, filters=None, cursor=None, limit=None):
        return self._inner.get_run_ids(self._scope(filters), cursor, limit)

    def get_runs_count(self, filters=None):
        return self._inner.get_runs_count(self._scope(filters))

    def get_run_records(self, filters=None, limit=None, order_by=None, ascending=False, cursor=None, bucket_by=None):
        return self._inner.get_run_records(self._scope(filters), limit, order_by, ascending, cursor, bucket_by)

    def get_run_partition_data(self, runs_filter):
        return self._inner.get_run_partition_data(self._scope(runs_filter))

    def get_run_group(self, run_id: str):
        if not self.run_visible(run_id):
            return None
        group = self._inner.get_run_group(run_id)
        if group is None:
            return None
        root, runs = group
        return root, [run for run in runs if run.tags.get(PROJECT_TAG) in self.projects]

    def has_run(self, run_id: str) -> bool:
        return self.run_visible(run_id)

    def run_visible(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        return bool(self._inner.get_run_ids(self._scope(dg.RunsFilter(run_ids=[run_id])), limit=1))

    def _visible_tags(self) -> dict[str, set[str]]:
        """Tag keys and values of this user's runs (the most recent TAGS_FROM_RUNS): the tag filter's
        suggestions must not list other teams' users, partitions or projects."""
        tags: dict[str, set[str]] = {}
        for run in self._inner.get_runs(self._scope(None), limit=TAGS_FROM_RUNS):
            for key, value in run.tags.items():
                tags.setdefault(key, set()).add(value)
        return tags

    def get_run_tags(self, tag_keys, value_prefix=None, limit=None):
        found = [
            (key, {v for v in values if value_prefix is None or v.startswith(value_prefix)})
            for key, values in sorted(self._visible_tags().items())
            if key in set(tag_keys)
        ]
        return [(key, set(sorted(values)[:limit])) for key, values in found if values]

    def get_run_tag_keys(self):
        return sorted(self._visible_tags())

    # Snapshots of jobs and execution plans: those of the user's runs only (ids are content hashes,
    # but a snapshot names another team's ops, assets and config).

    def has_job_snapshot(self, snapshot_id: str) -> bool:
        if not snapshot_id:
            return False
        scoped = self._scope(dg.RunsFilter(snapshot_id=snapshot_id))
        return bool(self._inner.get_run_ids(scoped, limit=1)) and self._inner.has_job_snapshot(snapshot_id)

    def get_job_snapshot(self, snapshot_id: str):
        if not self.has_job_snapshot(snapshot_id):
            raise dg.DagsterInvariantViolationError(f"no job snapshot {snapshot_id} among your projects' runs")
        return self._inner.get_job_snapshot(snapshot_id)

    def has_execution_plan_snapshot(self, snapshot_id: str) -> bool:
        return self.get_execution_plan_snapshot(snapshot_id) is not None

    def get_execution_plan_snapshot(self, snapshot_id: str):
        found = self._inner.get_execution_plan_snapshot(snapshot_id) if snapshot_id else None
        return found if found is not None and self.has_job_snapshot(found.job_snapshot_id) else None

    def _backfill_visible(self, backfill) -> bool:
        origin = backfill.partition_set_origin
        if origin is not None:
            return origin.repository_origin.code_location_origin.location_name in self.projects
        keys = backfill.asset_selection or []
        return bool(keys) and all(asset_project(key) in self.projects for key in keys)

    def get_backfills(self, *args, **kwargs):
        return [b for b in self._inner.get_backfills(*args, **kwargs) if self._backfill_visible(b)]

    def get_backfills_count(self, *args, **kwargs):
        return len(self.get_backfills(*args, **kwargs))

    def get_backfill(self, backfill_id: str):
        backfill = self._inner.get_backfill(backfill_id)
        return backfill if backfill is not None and self._backfill_visible(backfill) else None


class ScopedEventLogStorage(_Delegate):
    """The event log as seen by a user of `projects`: their runs' events and their assets' events."""

    def __init__(self, inner: Any, runs: ScopedRunStorage):
        super().__init__(inner)
        self.runs, self.projects = runs, runs.projects
        self._visible_runs: dict[str, bool] = {}
        self._lock = threading.Lock()

    def run_visible(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        with self._lock:
            if run_id not in self._visible_runs:
                self._visible_runs[run_id] = self.runs.run_visible(run_id)
            return self._visible_runs[run_id]

    def key_visible(self, key: dg.AssetKey | None) -> bool:
        return asset_project(key) in self.projects

    def _record_visible(self, record) -> bool:
        entry = record.event_log_entry
        key = entry.dagster_event.asset_key if entry.dagster_event is not None else None
        return self.key_visible(key) if key is not None else self.run_visible(entry.run_id)

    def _records(self, records: Iterable) -> list:
        return [record for record in records if self._record_visible(record)]

    def _result(self, result):  # an EventRecordsResult (a NamedTuple)
        return result._replace(records=self._records(result.records))

    def _filter_key(self, records_filter) -> dg.AssetKey | None:
        return records_filter if isinstance(records_filter, dg.AssetKey) else records_filter.asset_key

    # Runs' own logs ---------------------------------------------------------------------------

    def get_logs_for_run(self, run_id, *args, **kwargs):
        return self._inner.get_logs_for_run(run_id, *args, **kwargs) if self.run_visible(run_id) else []

    def get_records_for_run(self, run_id, cursor=None, of_type=None, limit=None, ascending=True):
        return self._inner.get_records_for_run(
            run_id if self.run_visible(run_id) else NO_PROJECT, cursor, of_type, limit, ascending
        )

    def watch(self, run_id, cursor, callback) -> None:
        if self.run_visible(run_id):
            self._inner.watch(run_id, cursor, callback)

    def get_stats_for_run(self, run_id):
        return self._inner.get_stats_for_run(run_id if self.run_visible(run_id) else NO_PROJECT)

    def get_step_stats_for_run(self, run_id, step_keys=None):
        return self._inner.get_step_stats_for_run(run_id, step_keys) if self.run_visible(run_id) else []

    def get_asset_keys_for_run(self, run_id):
        return self._inner.get_asset_keys_for_run(run_id) if self.run_visible(run_id) else []

    # Assets' events ---------------------------------------------------------------------------

    def _fetch(self, method: str, records_filter, *args, **kwargs):
        result = getattr(self._inner, method)(records_filter, *args, **kwargs)
        if self.key_visible(self._filter_key(records_filter)):
            return result
        return result._replace(records=[], has_more=False)

    def fetch_materializations(self, records_filter, *args, **kwargs):
        return self._fetch("fetch_materializations", records_filter, *args, **kwargs)

    def fetch_observations(self, records_filter, *args, **kwargs):
        return self._fetch("fetch_observations", records_filter, *args, **kwargs)

    def fetch_failed_materializations(self, records_filter, *args, **kwargs):
        return self._fetch("fetch_failed_materializations", records_filter, *args, **kwargs)

    def fetch_run_status_changes(self, records_filter, *args, **kwargs):
        return self._result(self._inner.fetch_run_status_changes(records_filter, *args, **kwargs))

    def get_event_records(self, event_records_filter, limit=None, ascending=False):
        return self._records(self._inner.get_event_records(event_records_filter, limit, ascending))

    def get_asset_records(self, asset_keys: Sequence[dg.AssetKey] | None = None):
        return [r for r in self._inner.get_asset_records(asset_keys) if self.key_visible(r.asset_entry.asset_key)]

    def all_asset_keys(self):
        return [key for key in self._inner.all_asset_keys() if self.key_visible(key)]

    def get_asset_keys(self, prefix=None, limit=None, cursor=None):
        return [key for key in self._inner.get_asset_keys(prefix, None, cursor) if self.key_visible(key)][:limit]

    def has_asset_key(self, asset_key) -> bool:
        return self.key_visible(asset_key) and self._inner.has_asset_key(asset_key)

    def get_latest_materialization_events(self, asset_keys):
        events = self._inner.get_latest_materialization_events(asset_keys)
        return {key: event if self.key_visible(key) else None for key, event in events.items()}

    def get_asset_check_execution_history(self, check_key, *args, **kwargs):
        if not self.key_visible(check_key.asset_key):
            return []
        return self._inner.get_asset_check_execution_history(check_key, *args, **kwargs)

    def get_latest_asset_check_execution_by_key(self, check_keys, *args, **kwargs):
        visible = [key for key in check_keys if self.key_visible(key.asset_key)]
        return self._inner.get_latest_asset_check_execution_by_key(visible, *args, **kwargs)

    # Concurrency pools -------------------------------------------------------------------------

    def get_concurrency_info(self, concurrency_key: str):
        """A shared pool's counts as they are, with only the user's own runs named: another
        project's run and step read as OTHER_PROJECT."""
        info = self._inner.get_concurrency_info(concurrency_key)
        claimed = [slot if self.run_visible(slot.run_id) else copy(slot, run_id=OTHER_PROJECT, step_key=OTHER_PROJECT)
                   for slot in info.claimed_slots]  # fmt: skip
        pending = [step if self.run_visible(step.run_id) else copy(step, run_id=OTHER_PROJECT, step_key=OTHER_PROJECT)
                   for step in info.pending_steps]  # fmt: skip
        return copy(info, claimed_slots=claimed, pending_steps=pending)


class ScopedScheduleStorage(_Delegate):
    """Schedule and sensor states and their ticks, of the given projects' code locations only."""

    def __init__(self, inner: Any, projects: frozenset[str]):
        super().__init__(inner)
        self.projects = projects

    def _visible(self, state) -> bool:
        return state is not None and state.origin.repository_origin.code_location_origin.location_name in self.projects

    def all_instigator_state(self, *args, **kwargs):
        return [state for state in self._inner.all_instigator_state(*args, **kwargs) if self._visible(state)]

    def get_instigator_state(self, origin_id, selector_id):
        state = self._inner.get_instigator_state(origin_id, selector_id)
        return state if self._visible(state) else None

    def get_ticks(self, origin_id, selector_id, *args, **kwargs):
        if self.get_instigator_state(origin_id, selector_id) is None:
            return []
        return self._inner.get_ticks(origin_id, selector_id, *args, **kwargs)

    def get_tick_summaries(self, origin_id, selector_id, *args, **kwargs):
        if self.get_instigator_state(origin_id, selector_id) is None:
            return []
        return self._inner.get_tick_summaries(origin_id, selector_id, *args, **kwargs)

    def get_batch_ticks(self, selector_ids, *args, **kwargs):
        visible = {state.selector_id for state in self.all_instigator_state()}
        return self._inner.get_batch_ticks([i for i in selector_ids if i in visible], *args, **kwargs)


def scoped_instance(instance: dg.DagsterInstance, projects: frozenset[str]) -> dg.DagsterInstance:
    """A view of `instance` whose run and event storages answer only for `projects` (see above).

    The same class, settings and storages; only the two storage attributes are wrapped, so every
    instance method (and every loader that reads `instance.run_storage` directly) is scoped."""
    scoped = object.__new__(type(instance))
    # Cached helpers (functools.cached_property) hold the instance they were made for: not copied,
    # so the copy makes its own, over the scoped storages.
    cached = {name for klass in type(instance).__mro__ for name, value in vars(klass).items()
              if isinstance(value, functools.cached_property)}  # fmt: skip
    scoped.__dict__.update({key: value for key, value in instance.__dict__.items() if key not in cached})
    runs = ScopedRunStorage(instance.run_storage, projects)
    scoped._run_storage = runs  # noqa: SLF001 - the attributes DagsterInstance reads its storages from
    events = ScopedEventLogStorage(instance.event_log_storage, runs)
    scoped._event_storage = events
    scoped._compute_log_manager = scoped_compute_logs(instance.compute_log_manager, events)
    if instance.schedule_storage is not None:
        scoped._schedule_storage = ScopedScheduleStorage(instance.schedule_storage, projects)
    return scoped


class WorkspaceScoper:
    """The workspace of the given projects' code locations; one per set of projects and workspace,
    kept (building a workspace's asset graph is the expensive part of a request)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cache: dict[frozenset[str], tuple[CurrentWorkspace, CurrentWorkspace]] = {}

    def scoped(self, workspace: CurrentWorkspace, projects: frozenset[str]) -> CurrentWorkspace:
        with self._lock:
            cached = self._cache.get(projects)
            if cached is not None and cached[0] is workspace:
                return cached[1]
            entries: Mapping[str, Any] = workspace.code_location_entries
            scoped = CurrentWorkspace({name: entry for name, entry in entries.items() if name in projects})
            self._cache[projects] = (workspace, scoped)
            return scoped


def log_key_refusal(log_key: Sequence[str]) -> str | None:
    """Why a step log key cannot name a log (None when it can): every part must be a plain name, so
    that the first part (the run id, whose project is checked) is the folder the log really sits in."""
    if not log_key:
        return "an empty log key"
    for part in log_key:
        if not isinstance(part, str) or part in ("", ".", "..") or any(c in part for c in "/\\\x00"):
            return "a log key's parts are plain names: not empty, '.', '..', and without slashes or NUL"
        if len(part) > MAX_LOG_KEY_PART:
            return f"a log key part longer than {MAX_LOG_KEY_PART} characters"
    return None


def scoped_compute_logs(manager: Any, events: ScopedEventLogStorage) -> Any:
    """Step logs (stdout/stderr) are found by log key, whose first part is the run id: a key that is
    not plain names (`..`, slashes, NUL) or whose run is another project's reads as empty, and no
    server path reaches the user. A copy of the manager, of a subclass of its own class, so Dagster's
    type checks (the log download route's) still hold."""
    keyed_methods = ("get_log_data", "subscribe", "get_log_metadata", "read_log_lines_for_log_key_prefix",
                     "get_log_keys_for_log_key_prefix", "get_log_data_for_type", "get_captured_local_path",
                     "has_local_file", "cloud_storage_has_logs", "download_from_cloud_storage")  # fmt: skip

    def checked(name: str):
        method = getattr(type(manager), name)

        def keyed(self, log_key, *args, **kwargs):
            log_key = list(log_key or [])
            if log_key_refusal(log_key) or not events.run_visible(log_key[0]):
                log_key = NO_LOG_KEY
            answer = method(self, log_key, *args, **kwargs)
            if name == "get_log_metadata" and answer is not None:
                # The download URLs serve the logs; the server's file paths are nobody's business.
                answer = answer._replace(stdout_location=None, stderr_location=None)
            return answer

        return keyed

    cls = type(manager)
    scoped_class = type(f"Scoped{cls.__name__}", (cls,), {n: checked(n) for n in keyed_methods if hasattr(cls, n)})
    scoped = object.__new__(scoped_class)
    scoped.__dict__.update(manager.__dict__)
    return scoped
