"""The instance as one user may read it (algo_platform/web/visibility.py), in process on a real
ephemeral instance: runs, their logs and tags, asset events, whatever path Dagster reads them by."""

from __future__ import annotations

import dagster as dg

from algo_platform.core.project import PROJECT_TAG
from algo_platform.web.visibility import scoped_instance


def _run(instance: dg.DagsterInstance, tags: dict) -> str:
    run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags=tags)
    instance.report_engine_event("the run's own log line", run)
    return run.run_id


def test_a_scoped_instance_answers_only_for_its_projects():
    with dg.DagsterInstance.ephemeral() as instance:
        mine = _run(instance, {PROJECT_TAG: "team_a", "user": "edna"})
        theirs = _run(instance, {PROJECT_TAG: "team_b", "user": "lars"})
        untagged = _run(instance, {"user": "root"})
        for project in ("team_a", "team_b"):
            instance.report_runless_asset_event(dg.AssetMaterialization([project, "raw_events"], metadata={"n": 1}))
        instance.run_domain  # noqa: B018 - a cached helper that holds the instance it was made for

        scoped = scoped_instance(instance, frozenset({"team_a"}))
        assert [run.run_id for run in scoped.get_runs()] == [mine]
        assert scoped.get_runs_count() == 1
        assert [r.dagster_run.run_id for r in scoped.get_run_records()] == [mine]
        assert scoped.get_run_by_id(theirs) is None and scoped.get_run_by_id(untagged) is None
        asking_for_theirs = dg.RunsFilter(tags={PROJECT_TAG: "team_b"})
        assert scoped.get_runs(asking_for_theirs) == []
        assert scoped.all_logs(theirs) == [] and scoped.all_logs(mine)
        assert dict(scoped.get_run_tags([PROJECT_TAG, "user"])) == {PROJECT_TAG: {"team_a"}, "user": {"edna"}}
        assert scoped.get_asset_keys() == [dg.AssetKey(["team_a", "raw_events"])]
        theirs_events = scoped.fetch_materializations(dg.AssetKey(["team_b", "raw_events"]), limit=10)
        assert theirs_events.records == []
        assert scoped.fetch_materializations(dg.AssetKey(["team_a", "raw_events"]), limit=10).records
        assert scoped.run_domain._instance is scoped  # noqa: SLF001 - made anew over the scoped storages

        # The unscoped instance is untouched.
        assert {run.run_id for run in instance.get_runs()} == {mine, theirs, untagged}
