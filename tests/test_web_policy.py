"""Which role each GraphQL mutation needs and which project it is charged to (algo_platform/web/policy.py)."""

from __future__ import annotations

import pytest

from algo_platform.web.accounts import Principal, Role
from algo_platform.web.policy import RULES, UnreadableRequest, judge, mutations, tag_with_user


class FakeTargets:
    """Runs, backfills and assets owned as a real workspace would say."""

    runs = {"run-a": "team_a", "run-b": "team_b"}

    def of_run(self, run_id):
        return self.runs.get(run_id)

    def of_backfill(self, backfill_id):
        return {"team_b"} if backfill_id == "bf-b" else {None}

    def of_asset(self, path):
        return path[0] if path and path[0] in ("team_a", "team_b") else None

    def of_instigator(self, *ids):
        return "team_a" if "sensor-a" in ids else None


EDNA = Principal("edna", roles={"team_a": Role.editor})
LARS = Principal("lars", roles={"team_b": Role.launcher})
ROOT = Principal("root", platform_admin=True)


def decide(query: str, principal: Principal, variables: dict | None = None) -> list[tuple[str, bool]]:
    return [(a.mutation, judge(a, principal).allowed) for a in mutations(query, variables or {}, FakeTargets())]


def test_every_mutation_dagster_has_is_listed():
    """A Dagster upgrade that adds a mutation fails here, so someone decides who may call it."""
    from dagster_graphql.schema import create_schema

    schema = create_schema()
    schema = getattr(schema, "graphql_schema", schema)
    assert set(schema.mutation_type.fields) - set(RULES) == set()


def test_a_run_id_is_charged_to_the_project_that_owns_the_run():
    terminate = 'mutation { terminateRun(runId: "%s") { __typename } }'
    assert decide(terminate % "run-b", LARS) == [("terminateRun", True)]
    assert decide(terminate % "run-a", LARS) == [("terminateRun", False)]
    assert decide(terminate % "run-unknown", EDNA) == [("terminateRun", False)]  # no project: admins only
    assert decide(terminate % "run-unknown", ROOT) == [("terminateRun", True)]


def test_ad_hoc_materialization_needs_an_editor_but_a_job_a_launcher():
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"

    def params(job: str) -> dict:
        return {"p": {"selector": {"repositoryLocationName": "team_b", "repositoryName": "r", "jobName": job}}}

    assert decide(launch, LARS, params("team_b_ingest_job")) == [("launchRun", True)]
    assert decide(launch, LARS, params("__ASSET_JOB")) == [("launchRun", False)]


def test_an_asset_selection_in_another_project_refuses_the_launch():
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    selector = {"repositoryLocationName": "team_a", "repositoryName": "r", "jobName": "__ASSET_JOB"}
    selector["assetSelection"] = [{"path": ["team_a", "raw_events"]}, {"path": ["team_b", "raw_events"]}]
    assert decide(launch, EDNA, {"p": {"selector": selector}}) == [("launchRun", False)]


def test_variable_defaults_are_what_dagster_runs():
    hidden = (
        'mutation($id: String! = "run-a") { terminateRun(runId: $id) { __typename } }'  # default names team_a's run
    )
    assert decide(hidden, LARS) == [("terminateRun", False)]
    assert decide(hidden, LARS, {"id": "run-b"}) == [("terminateRun", True)]


def test_instigator_ids_and_backfills_are_looked_up():
    assert decide('mutation { stopSensor(id: "sensor-a") { __typename } }', EDNA) == [("stopSensor", True)]
    assert decide('mutation { stopSensor(id: "sensor-a") { __typename } }', LARS) == [("stopSensor", False)]
    cancel = 'mutation { cancelPartitionBackfill(backfillId: "bf-b") { __typename } }'
    assert decide(cancel, LARS) == [("cancelPartitionBackfill", True)]
    assert decide(cancel, EDNA) == [("cancelPartitionBackfill", False)]


def test_unreadable_documents_are_refused_not_passed_on():
    with pytest.raises(UnreadableRequest):
        mutations("mutation { launchRun(", {}, FakeTargets())
    with pytest.raises(UnreadableRequest, match="cyclic"):
        mutations("mutation { ...A } fragment A on Mutation { ...A }", {}, FakeTargets())


def test_the_user_tag_replaces_any_the_client_sent():
    query = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    variables = {"p": {"selector": {}, "executionMetadata": {"tags": [{"key": "user", "value": "root"}]}}}
    actions = mutations(query, variables, FakeTargets())
    tagged = tag_with_user(variables, actions, "lars")
    assert tagged["p"]["executionMetadata"]["tags"] == [{"key": "user", "value": "lars"}]
    many = "mutation($l: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $l) { __typename } }"
    listed = {"l": [{"selector": {}}, {"selector": {}}]}
    tagged = tag_with_user(listed, mutations(many, listed, FakeTargets()), "lars")
    assert [p["executionMetadata"]["tags"] for p in tagged["l"]] == [[{"key": "user", "value": "lars"}]] * 2
