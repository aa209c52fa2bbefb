"""The project (code location) that owns a run, a backfill, an asset or a schedule/sensor state.

Looked up in the webserver's own workspace and instance at the moment a mutation is judged, so a
run id or an instigator id can only be attributed to the location that really owns it, not to one
the request claims.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.remote_representation.external import CompoundID  # ids the UI sends for states

from algo_platform.core.project import PROJECT_TAG


class WorkspaceTargets:
    def __init__(self, process_context):
        self.process_context = process_context

    @property
    def instance(self) -> dg.DagsterInstance:
        return self.process_context.instance

    def _repositories(self):
        context = self.process_context.create_request_context()
        for entry in context.get_code_location_entries().values():
            if entry.code_location is None:
                continue
            for repository in entry.code_location.get_repositories().values():
                yield entry.origin.location_name, repository

    def of_run(self, run_id: str) -> str | None:
        run = self.instance.get_run_by_id(run_id)
        if run is None or run.remote_job_origin is None:
            return None
        return run.remote_job_origin.location_name

    def readable_by(self, run_id: str) -> str | None:
        """The project whose members may read the run (its `algo_platform/project` tag)."""
        run = self.instance.get_run_by_id(run_id)
        return run.tags.get(PROJECT_TAG) if run is not None else None

    def of_asset(self, path: list[str]) -> str | None:
        key = dg.AssetKey(path)
        for location, repository in self._repositories():
            if repository.get_asset_node_snap(key) is not None:
                return location
        return None

    def of_backfill(self, backfill_id: str) -> set[str | None]:
        backfill = self.instance.get_backfill(backfill_id)
        if backfill is None:
            return {None}
        if backfill.partition_set_origin is not None:
            return {backfill.partition_set_origin.repository_origin.code_location_origin.location_name}
        return {self.of_asset(list(key.path)) for key in backfill.asset_selection or []} or {None}

    def of_instigator(self, *ids: str | None) -> str | None:
        wanted = set()
        for given in filter(None, ids):
            if CompoundID.is_valid_string(given):
                compound = CompoundID.from_string(given)
                wanted |= {compound.remote_origin_id, compound.selector_id}
            else:
                wanted.add(given)
        for location, repository in self._repositories():
            for instigator in [*repository.get_schedules(), *repository.get_sensors()]:
                if {instigator.get_remote_origin_id(), instigator.selector_id} & wanted:
                    return location
        # A schedule or sensor whose code is gone still has its state: its origin names the location.
        for state in self.instance.all_instigator_state():
            if {state.instigator_origin_id, state.selector_id} & wanted:
                return state.origin.repository_origin.code_location_origin.location_name
        return None
