"""Which role each GraphQL mutation needs and which project it is charged to (algo_platform/web/policy.py)."""

from __future__ import annotations

import json

import pytest

from algo_platform.accounts.principal import Principal, Role
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


def test_a_single_value_where_graphql_expects_a_list_is_judged_as_the_list_it_becomes():
    """GraphQL coerces one value into a one-item list: a lone asset selection, asset path, execution
    params or run id is the list Dagster acts on, so it is charged to its project."""
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    selector = {"repositoryLocationName": "team_a", "repositoryName": "r", "jobName": "__ASSET_JOB"}
    for lone in ({"path": ["team_b", "raw_events"]}, {"path": "team_b"}):
        assert decide(launch, EDNA, {"p": {"selector": {**selector, "assetSelection": lone}}}) == [("launchRun", False)]
    many = "mutation($l: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $l) { __typename } }"
    lone_params = {"selector": {**selector, "assetSelection": [{"path": ["team_b", "raw_events"]}]}}
    assert decide(many, EDNA, {"l": lone_params}) == [("launchMultipleRuns", False)]
    delete = "mutation($ids: [String!]!) { terminateRuns(runIds: $ids) { __typename } }"
    assert decide(delete, LARS, {"ids": "run-a"}) == [("terminateRuns", False)]
    assert decide(delete, LARS, {"ids": "run-b"}) == [("terminateRuns", True)]


def test_mutation_variables_with_defaults_are_refused():
    """Dagster runs a default the request's variables never hold: a `user` tag or a target could hide there."""
    hidden = 'mutation($id: String! = "run-a") { terminateRun(runId: $id) { __typename } }'
    with pytest.raises(UnreadableRequest, match=r"\$id has a default value"):
        mutations(hidden, {"id": "run-b"}, FakeTargets())
    forged = (
        'mutation($p: ExecutionParams! = {selector: {repositoryLocationName: "team_b", repositoryName: "r", '
        'jobName: "j"}, executionMetadata: {tags: [{key: "user", value: "root"}]}}) '
        "{ launchRun(executionParams: $p) { __typename } }"
    )
    with pytest.raises(UnreadableRequest, match="default value"):
        mutations(forged, {}, FakeTargets())
    assert decide('query($id: ID = "x") { runOrError(runId: $id) { __typename } }', LARS) == []  # reads may


def test_platform_owned_tags_and_run_config_never_come_from_a_launch():
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"

    def params(tags=(), run_config=None) -> dict:
        selector = {"repositoryLocationName": "team_b", "repositoryName": "r", "jobName": "team_b_retrain_job"}
        metadata = {"tags": [{"key": k, "value": v} for k, v in tags]}
        return {"p": {"selector": selector, "executionMetadata": metadata, "runConfigData": run_config}}

    hostile = params(
        [("dagster-k8s/config", '{"container_config": {"securityContext": {"privileged": true}}}'),
         ("algo_platform/training", "team_a"), ("dagster/priority", "100"), ("user", "root"), ("note", "kept")]
    )  # fmt: skip
    actions = [judge(a, LARS) for a in mutations(launch, hostile, FakeTargets())]
    assert [a.allowed for a in actions] == [True]
    tag_with_user(hostile, actions, "lars")
    sent = {t["key"]: t["value"] for t in hostile["p"]["executionMetadata"]["tags"]}
    assert sent == {"note": "kept", "algo_platform/project": "team_b", "user": "lars"}
    assert actions[0].dropped_tags == {"dagster-k8s/config", "algo_platform/training", "dagster/priority"}

    trainer_image = {"resources": {"training_launcher": {"config": {"image": "evil:latest"}}}}
    out_of_bounds = {"resources": {"data_quality": {"config": {"quality_threshold": 7}}}}
    not_a_number = {"resources": {"data_quality": {"config": {"examples_per_expectation": True}}}}
    as_yaml = "resources:\n  training_launcher:\n    config: {image: evil}\n"
    for run_config in (trainer_image, as_yaml, {"execution": {"config": {}}}, out_of_bounds, not_a_number):
        refused = [judge(a, LARS) for a in mutations(launch, params(run_config=run_config), FakeTargets())]
        assert [a.allowed for a in refused] == [False], run_config
        assert "run config" in refused[0].reason
    resources = {"data_quality": {"config": {"quality_threshold": 0.8}}, "promotion": {"config": {"margin": 0}}}
    thresholds = {"ops": {"team_b__sequence_model": {"config": {"epochs": 2}}}, "resources": resources}
    allowed = [judge(a, LARS) for a in mutations(launch, params(run_config=thresholds), FakeTargets())]
    assert [a.allowed for a in allowed] == [True]
    assert allowed[0].launch_settings == {
        "sequence_model.epochs": 2, "data_quality.quality_threshold": 0.8, "promotion.margin": 0
    }  # fmt: skip


@pytest.mark.parametrize(
    ("op_config", "says"),
    [
        ({"model": "/tmp/evil.py:X"}, "project's decision"),  # the code the trainer imports
        ({"model": "../movies/models.py:X"}, "project's decision"),
        ({"model": "sasrec"}, "project's decision"),  # even a built-in: the family is project.yaml's
        ({"epochs": 100000}, "outside"),
        ({"batch_size": 10**9}, "outside"),
        ({"learning_rate": True}, "outside"),
        ({"device": "cuda:0; rm -rf /"}, "not one of"),
        ({"no_such_setting": 1}, "not a setting"),
    ],
)
def test_a_launch_sets_only_the_documented_settings_within_their_bounds(op_config, says):
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    selector = {"repositoryLocationName": "team_b", "repositoryName": "r", "jobName": "team_b_retrain_job"}
    for op in ("team_b__sequence_model", "sequence_model"):
        params = {"p": {"selector": selector, "runConfigData": {"ops": {op: {"config": op_config}}}}}
        refused = [judge(a, LARS) for a in mutations(launch, params, FakeTargets())]
        assert [a.allowed for a in refused] == [False]
        assert says in refused[0].reason


def test_a_launch_cannot_give_config_or_inputs_to_other_assets():
    launch = "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"
    selector = {"repositoryLocationName": "team_b", "repositoryName": "r", "jobName": "team_b_retrain_job"}
    for ops in ({"team_b__raw_events": {"config": {}}}, {"team_b__sequence_model": {"inputs": {"x": "/etc/passwd"}}}):
        params = {"p": {"selector": selector, "runConfigData": {"ops": ops}}}
        refused = [judge(a, LARS) for a in mutations(launch, params, FakeTargets())]
        assert [a.allowed for a in refused] == [False], ops


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


def test_a_backfill_cannot_set_the_platforms_resources_either():
    backfill = "mutation($b: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $b) { __typename } }"
    selector = {"partitionSetName": "p", "repositorySelector": {"repositoryLocationName": "team_b",
                                                                "repositoryName": "r"}}  # fmt: skip
    trainer = {"resources": {"training_launcher": {"config": {"service_account_name": "dagster"}}}}
    refused = mutations(backfill, {"b": {"selector": selector, "runConfigData": trainer}}, FakeTargets())
    assert [judge(a, LARS).allowed for a in refused] == [False]
    assert "resources.training_launcher" in refused[0].reason
    allowed = mutations(backfill, {"b": {"selector": selector, "partitionNames": ["2026-01-01"]}}, FakeTargets())
    assert [judge(a, LARS).allowed for a in allowed] == [True]


def test_a_re_execution_through_its_execution_params_is_judged_and_tagged_like_a_launch():
    """launchRunReexecution takes reexecutionParams or executionParams, and Dagster runs whichever holds
    a value: a null (or absent) reexecutionParams must not let executionParams pass unjudged."""
    query = (
        "mutation R($e: ExecutionParams, $r: ReexecutionParams) { "
        "launchRunReexecution(executionParams: $e, reexecutionParams: $r) { __typename } }"
    )
    selector = {"repositoryLocationName": "team_b", "repositoryName": "r", "jobName": "team_b_ingest_job"}
    tags = [{"key": "user", "value": "root"}, {"key": "dagster-k8s/config", "value": "{}"}]
    for variables in ({"r": None}, {}):
        hostile = {**variables, "e": {"selector": selector, "executionMetadata": {"tags": tags},
                                      "runConfigData": "execution:\n  config: {}\n"}}  # fmt: skip
        refused = [judge(a, LARS) for a in mutations(query, hostile, FakeTargets())]
        assert [a.allowed for a in refused] == [False] and "execution" in refused[0].reason
        plain = {**variables, "e": {"selector": selector, "executionMetadata": {"tags": list(tags)}}}
        actions = [judge(a, LARS) for a in mutations(query, plain, FakeTargets())]
        assert [a.allowed for a in actions] == [True]
        tag_with_user(plain, actions, "lars")
        sent = {t["key"]: t["value"] for t in plain["e"]["executionMetadata"]["tags"]}
        assert sent == {"user": "lars", "algo_platform/project": "team_b"}


def test_a_members_answer_carries_no_stack_trace_or_server_path():
    from algo_platform.web.scrub import scrub_json

    answer = {
        "data": {
            "runTagsOrError": {"__typename": "PythonError", "message": "no such file /srv/dagster/storage/x.db",
                               "stack": ['  File "/srv/venv/lib/dagster/x.py", line 3'], "errorChain": [{"x": 1}]},
            "runOrError": {"__typename": "Run", "runId": "r1", "rootRunId": "/not/an/error"},
        },
        "errors": [{"message": "at /srv/app/y.py", "extensions": {"errorInfo": {"stack": ["..."]}, "code": 1}}],
    }  # fmt: skip
    clean = json.loads(scrub_json(json.dumps(answer).encode()))
    error = clean["data"]["runTagsOrError"]
    assert error["stack"] == [] and error["errorChain"] == [] and "/srv" not in error["message"]
    assert clean["errors"] == [{"message": "at <server path>", "extensions": {"code": 1}}]
    assert clean["data"]["runOrError"] == answer["data"]["runOrError"]  # data that is not an error stays as it is
