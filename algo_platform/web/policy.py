"""Which role each Dagster GraphQL mutation needs, and which project it acts on.

Every mutation field the platform knows is listed in RULES with the least role that may call it
and how its arguments name the project (the code location) that owns the target: a job or asset
selector names its location; a run, a backfill, a schedule or sensor state is looked up; an asset
key is looked up in the workspace. A mutation field not listed is refused, so a Dagster release
that adds one opens nothing until it is listed here. Mutations without a project (reload the
whole workspace, pause auto-materialize, concurrency limits) need a platform admin.

The document is parsed with graphql-core, the parser Dagster executes it with, so aliases,
fragments, several operations in one document and variables with defaults are all seen as Dagster
will see them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
)
from graphql.error import GraphQLError
from graphql.utilities import value_from_ast_untyped

from algo_platform.accounts.principal import Principal, Role
from algo_platform.core.hyperparameters import LAUNCH_CONFIG, launch_refusal
from algo_platform.core.project import PROJECT_TAG

USER_TAG = "user"  # Dagster's own tag for who launched a run: the runs list shows it as "Launched by"
PLATFORM = None  # the "project" of a mutation that acts on the whole platform


class Targets(Protocol):
    """Resolves what a mutation names to the project that owns it (web/targets.py)."""

    def of_run(self, run_id: str) -> str | None: ...
    def of_backfill(self, backfill_id: str) -> set[str]: ...
    def of_asset(self, path: list[str]) -> str | None: ...
    def readable_by(self, run_id: str) -> str | None: ...
    def of_instigator(self, *ids: str | None) -> str | None: ...


@dataclass
class Action:
    """One mutation field of a request: what it is, on which project(s), and what it needs."""

    mutation: str
    projects: set[str | None]
    needs: Role | None  # None: a platform admin only
    target: str
    # Where the platform's user tag goes: (variable name, path inside it to the tag list), one per
    # launch argument the document passes (a re-execution may pass two; Dagster runs whichever holds
    # a value, so every one is judged and tagged).
    tag_slots: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    error: str | None = None  # why the request cannot be judged (refused)
    allowed: bool = False
    reason: str = ""
    roles: dict[str | None, str] = field(default_factory=dict)
    response_key: str = ""  # its alias, or its name: where its result sits in the response
    dropped_tags: set[str] = field(default_factory=set)  # platform-owned tags removed from the launch
    launch_settings: dict[str, Any] = field(default_factory=dict)  # thresholds set at launch, for the audit


def _location(selector: Any) -> str | None:
    if not isinstance(selector, Mapping):
        return None
    if "repositorySelector" in selector:
        return _location(selector["repositorySelector"])
    location = selector.get("repositoryLocationName")
    return location if isinstance(location, str) else None


def _as_list(value: Any) -> list:
    """A GraphQL list argument as the server reads it: a single value where a list is expected is a
    list of that one value (input coercion), so it must be judged as one."""
    return [] if value is None else value if isinstance(value, list) else [value]


def _asset_paths(items: Any) -> list[list[str]]:
    paths = []
    for item in _as_list(items):
        key = item.get("assetKey", item) if isinstance(item, Mapping) else None
        path = _as_list(key.get("path")) if isinstance(key, Mapping) else None
        if path:
            paths.append([str(part) for part in path])
    return paths


def _execution(params: Any, targets: Targets) -> tuple[set[str | None], str, bool]:
    """(projects, target, ad hoc?) of ExecutionParams: ad hoc is a materialization outside a job."""
    selector = params.get("selector", {}) if isinstance(params, Mapping) else {}
    job = selector.get("jobName") or selector.get("pipelineName") or ""
    location = _location(selector)
    asset_projects = {targets.of_asset(p) for p in _asset_paths(selector.get("assetSelection"))}
    projects = {location} | asset_projects if asset_projects else {location}
    ad_hoc = str(job).startswith("__ASSET_JOB")
    assets = ", ".join("/".join(p) for p in _asset_paths(selector.get("assetSelection")))
    return projects, f"{location}:{job}" + (f" [{assets}]" if assets else ""), ad_hoc


Rule = Callable[[dict[str, Any], Targets], tuple[set[str | None], Role | None, str]]


def _launch(args, targets):
    projects, target, ad_hoc = _execution(args.get("executionParams"), targets)
    return projects, Role.editor if ad_hoc else Role.launcher, target


def _launch_many(args, targets):
    projects, names, needs = set(), [], Role.launcher
    for params in _as_list(args.get("executionParamsList")):
        found, target, ad_hoc = _execution(params, targets)
        projects |= found
        names.append(target)
        needs = max(needs, Role.editor if ad_hoc else Role.launcher)
    return projects or {PLATFORM}, needs, "; ".join(names)


def _reexecute(args, targets):
    parent = (args.get("reexecutionParams") or {}).get("parentRunId")
    if parent:
        return {targets.of_run(str(parent))}, Role.launcher, f"run {parent}"
    return _launch(args, targets)


def _backfill(args, targets):
    params = args.get("backfillParams") or {}
    paths = _asset_paths(params.get("assetSelection")) + _asset_paths(params.get("partitionsByAssets"))
    projects = {targets.of_asset(p) for p in paths}
    selector = params.get("selector")
    if selector:
        projects.add(_location(selector))
    target = selector.get("partitionSetName") if isinstance(selector, Mapping) else None
    target = target or ", ".join("/".join(p) for p in paths)
    return projects or {PLATFORM}, Role.launcher, f"backfill of {target}"


def _backfill_id(argument: str, role: Role):
    def rule(args, targets):
        backfill_id = args.get(argument)
        if isinstance(backfill_id, Mapping):  # reexecutePartitionBackfill: reexecutionParams.parentRunId
            backfill_id = backfill_id.get("parentRunId")
        return targets.of_backfill(str(backfill_id)) or {PLATFORM}, role, f"backfill {backfill_id}"

    return rule


def _run_ids(role: Role):
    def rule(args, targets):
        ids = [args["runId"]] if "runId" in args else _as_list(args.get("runIds"))
        return {targets.of_run(str(i)) for i in ids} or {PLATFORM}, role, "runs " + ", ".join(map(str, ids))

    return rule


def _selector(argument: str, role: Role, name_field: str):
    def rule(args, targets):
        selector = args.get(argument) or {}
        name = selector.get(name_field) if isinstance(selector, Mapping) else None
        return {_location(selector)}, role, f"{_location(selector)}:{name}"

    return rule


def _instigator(*id_arguments: str):
    def rule(args, targets):
        ids = [args.get(a) for a in id_arguments]
        return {targets.of_instigator(*ids)}, Role.editor, f"instigator {next((i for i in ids if i), None)}"

    return rule


def _event_asset(args, targets):
    params = args.get("eventParams") or {}
    paths = _asset_paths([params])
    return {targets.of_asset(p) for p in paths} or {PLATFORM}, Role.editor, ", ".join("/".join(p) for p in paths)


def _wipe(args, targets):
    paths = _asset_paths(args.get("assetPartitionRanges"))
    return {targets.of_asset(p) for p in paths} or {PLATFORM}, Role.admin, ", ".join("/".join(p) for p in paths)


def _location_argument(argument: str, role: Role):
    def rule(args, targets):
        location = args.get(argument)
        if isinstance(location, Mapping):
            location = _location(location)
        return {location if isinstance(location, str) else None}, role, f"location {location}"

    return rule


def _dynamic_partitions(args, targets):
    role = Role.admin if args.get("wipeMaterializations") else Role.editor
    return {_location(args.get("repositorySelector"))}, role, f"partitions {args.get('partitionsDefName')}"


def _platform(args, targets):
    return {PLATFORM}, None, "platform"


def _anyone(args, targets):
    return set(), Role.viewer, "the signed-in user's own UI state"


RULES: dict[str, Rule] = {
    "launchRun": _launch,
    "launchPipelineExecution": _launch,
    "launchMultipleRuns": _launch_many,
    "launchRunReexecution": _reexecute,
    "launchPipelineReexecution": _reexecute,
    "launchPartitionBackfill": _backfill,
    "reexecutePartitionBackfill": _backfill_id("reexecutionParams", Role.launcher),
    "resumePartitionBackfill": _backfill_id("backfillId", Role.launcher),
    "cancelPartitionBackfill": _backfill_id("backfillId", Role.launcher),
    "terminateRun": _run_ids(Role.launcher),
    "terminatePipelineExecution": _run_ids(Role.launcher),
    "terminateRuns": _run_ids(Role.launcher),
    "deleteRun": _run_ids(Role.admin),
    "deletePipelineRun": _run_ids(Role.admin),
    "freeConcurrencySlots": _run_ids(Role.admin),
    "freeConcurrencySlotsForRun": _run_ids(Role.admin),
    "startSchedule": _selector("scheduleSelector", Role.editor, "scheduleName"),
    "resetSchedule": _selector("scheduleSelector", Role.editor, "scheduleName"),
    "scheduleDryRun": _selector("selectorData", Role.editor, "scheduleName"),
    "stopRunningSchedule": _instigator("id", "scheduleOriginId", "scheduleSelectorId"),
    "startSensor": _selector("sensorSelector", Role.editor, "sensorName"),
    "resetSensor": _selector("sensorSelector", Role.editor, "sensorName"),
    "setSensorCursor": _selector("sensorSelector", Role.editor, "sensorName"),
    "sensorDryRun": _selector("selectorData", Role.editor, "sensorName"),
    "stopSensor": _instigator("id", "jobOriginId", "jobSelectorId"),
    "addDynamicPartition": _dynamic_partitions,
    "deleteDynamicPartitions": _dynamic_partitions,
    "reportRunlessAssetEvents": _event_asset,
    "reportAssetCheckEvaluations": _event_asset,
    "wipeAssets": _wipe,
    "reloadRepositoryLocation": _location_argument("repositoryLocationName", Role.editor),
    "shutdownRepositoryLocation": _location_argument("repositoryLocationName", Role.admin),
    "refreshComponentState": _location_argument("locationName", Role.admin),
    "setAppManagedComponent": _location_argument("locationName", Role.admin),
    "deleteAppManagedComponent": _location_argument("locationName", Role.admin),
    "reloadWorkspace": _platform,
    "setAutoMaterializePaused": _platform,
    "setConcurrencyLimit": _platform,
    "deleteConcurrencyLimit": _platform,
    "__typename": _anyone,
    "logTelemetry": _anyone,
    "setNuxSeen": _anyone,
}

EXECUTION_TAGS = ("executionParams", ("executionMetadata", "tags"))
# Where each launching mutation carries its tags: (argument, path to the tag list inside it), the
# first argument present wins.
TAG_SLOTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "launchRun": [EXECUTION_TAGS],
    "launchPipelineExecution": [EXECUTION_TAGS],
    "launchMultipleRuns": [("executionParamsList", ("executionMetadata", "tags"))],
    "launchPartitionBackfill": [("backfillParams", ("tags",))],
    "launchRunReexecution": [("reexecutionParams", ("extraTags",)), EXECUTION_TAGS],
    "launchPipelineReexecution": [("reexecutionParams", ("extraTags",)), EXECUTION_TAGS],
}


class UnreadableRequest(ValueError):
    """A GraphQL request the platform cannot judge; it is refused, not passed on."""


# Tags the platform sets on runs from the project file (jobs' tags), never taken from a launch: they
# choose the pod (dagster-k8s/config), the queue position, the concurrency slots and the project a
# run is charged to. Dagster lets a launch's tags override a job's, so they are removed from launches.
PLATFORM_TAG_PREFIXES = (
    "dagster-k8s/",
    "algo_platform/",
    "dagster/priority",
    "dagster/concurrency_key",
    "dagster/pool",
)
# The run config a launch may set: each asset's own config within the bounds declared beside it
# (core/hyperparameters.py: the trainer's hyper-parameters, top-K; never the model family, which
# picks the code the trainer imports) and the thresholds the docs document as launch-time
# settings, within these bounds. Every other resource (the trainer's image, service account,
# Secrets, volumes) comes from project.yaml.
LAUNCH_TIME_SETTINGS: dict[str, dict[str, tuple[float, float]]] = {
    "data_quality": {
        "quality_threshold": (0.0, 1.0),
        "allowed_lateness_minutes": (0, 7 * 24 * 60),
        "drift_psi_threshold": (0.0, 10.0),
        "examples_per_expectation": (0, 100),
    },
    "promotion": {"margin": (-1.0, 1.0), "segment_tolerance": (0.0, 1.0), "min_segment_users": (1, 10_000_000)},
}


def platform_owned(tag_key: str) -> bool:
    return tag_key.startswith(PLATFORM_TAG_PREFIXES)


def _number_in(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


class RefusedRunConfig(ValueError):
    """A launch's run config sets what the platform owns; the message names the setting."""


def _config_section(where: str, section: Any) -> Mapping:
    """The `config` of a run config section that may hold nothing else."""
    config = section.get("config") if isinstance(section, Mapping) and set(section) <= {"config"} else None
    if not isinstance(config, Mapping):
        raise RefusedRunConfig(f"run config {where} takes only config: {{...}} at launch")
    return config


def _asset_settings(ops: Any) -> dict[str, Any]:
    """`ops.<project>__<asset>.config` of a launch, each field checked against its declared bounds."""
    if not isinstance(ops, Mapping):
        raise RefusedRunConfig("run config ops must be a mapping")
    settings = {}
    for op_name, section in ops.items():
        asset = str(op_name).rsplit("__", 1)[-1]
        config_class = LAUNCH_CONFIG.get(asset)
        if config_class is None:
            configurable = ", ".join(LAUNCH_CONFIG)
            raise RefusedRunConfig(f"run config ops.{op_name} takes no config at launch (only {configurable} do)")
        for key, value in _config_section(f"ops.{op_name}", section).items():
            refusal = launch_refusal(config_class, str(key), value)
            if refusal:
                raise RefusedRunConfig(f"run config ops.{op_name}.config: {refusal}")
            settings[f"{asset}.{key}"] = value
    return settings


def launch_time_settings(run_config: Any) -> dict[str, Any]:
    """What a launch's run config sets, as `asset.field` or `resource.field: value`, for the audit;
    RefusedRunConfig when it sets anything the platform or the project file owns, or a value out of
    its bounds."""
    if isinstance(run_config, str):
        try:
            run_config = yaml.safe_load(run_config)
        except yaml.YAMLError:
            raise RefusedRunConfig("the run config is not valid YAML") from None
    if run_config in (None, "", {}):
        return {}
    if not isinstance(run_config, Mapping):
        raise RefusedRunConfig("the run config must be a mapping")
    owned = sorted(set(run_config) - {"ops", "resources"})
    if owned:
        raise RefusedRunConfig(f"run config section(s) {', '.join(owned)} are set by the platform, not at launch")
    settings = _asset_settings(run_config.get("ops") or {})
    resources = run_config.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise RefusedRunConfig("run config resources must be a mapping")
    for name, section in resources.items():
        allowed = LAUNCH_TIME_SETTINGS.get(name)
        if allowed is None:
            raise RefusedRunConfig(
                f"run config resources.{name} is set by the platform from the project's project.yaml; "
                f"only {', '.join(f'resources.{r}' for r in LAUNCH_TIME_SETTINGS)} thresholds may be set at launch"
            )
        for key, value in _config_section(f"resources.{name}", section).items():
            if key not in allowed:
                setting = f"resources.{name}.config.{key}"
                raise RefusedRunConfig(
                    f"run config {setting} is not a launch-time setting; use one of {', '.join(allowed)}"
                )
            low, high = allowed[key]
            if not _number_in(value, low, high):
                raise RefusedRunConfig(f"run config resources.{name}.config.{key}={value!r} is outside [{low}, {high}]")
            settings[f"{name}.{key}"] = value
    return settings


def has_mutation(query: str) -> bool:
    """Whether a GraphQL document defines a mutation (an unparseable one is left to Dagster to refuse)."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    return any(getattr(d, "operation", None) == OperationType.MUTATION for d in document.definitions)


def _top_level_fields(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: frozenset = frozenset()
) -> Iterator[FieldNode]:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _top_level_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                raise UnreadableRequest(f"fragment {name} is unknown or cyclic")
            yield from _top_level_fields(fragments[name].selection_set, fragments, seen | {name})


def _variables(operation: OperationDefinitionNode, given: Mapping[str, Any]) -> dict[str, Any]:
    """The operation's variables as Dagster will execute them: only the values sent.

    A default value in a mutation's variable definitions is refused: Dagster would execute the
    default, which the request's `variables` (where the platform sets the user tag) never hold."""
    values = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if definition.default_value is not None:
            raise UnreadableRequest(f"mutation variable ${name} has a default value; send its value in variables")
        if name in given:
            values[name] = given[name]
    return values


def _run_configs(value: Any) -> Iterator[Any]:
    """The runConfigData of each ExecutionParams or LaunchBackfillParams in a launch variable (a
    list for launchMultipleRuns); re-execution parameters carry none (the parent run's applies)."""
    if isinstance(value, list):
        for item in value:
            yield from _run_configs(item)
    elif isinstance(value, Mapping):
        yield value.get("runConfigData")


def mutations(query: str, variables: Mapping[str, Any] | None, targets: Targets) -> list[Action]:
    """Every mutation field in the document, in every operation (Dagster runs the named one; all are judged)."""
    try:
        document: DocumentNode = parse(query)
    except GraphQLError as error:
        raise UnreadableRequest(f"the query does not parse: {error.message}") from None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    actions = []
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode) or operation.operation != OperationType.MUTATION:
            continue
        values = _variables(operation, variables or {})
        for node in _top_level_fields(operation.selection_set, fragments):
            name = node.name.value
            key = node.alias.value if node.alias else name
            args = {a.name.value: value_from_ast_untyped(a.value, values) for a in node.arguments or ()}
            rule = RULES.get(name)
            if rule is None:
                unknown = f"mutation {name} is not known to the platform"
                actions.append(Action(name, {PLATFORM}, None, name, error=unknown, response_key=key))
                continue
            try:
                projects, needs, target = rule(args, targets)
            except (AttributeError, TypeError, KeyError, ValueError) as error:
                unreadable = f"unreadable arguments ({error})"
                actions.append(Action(name, {PLATFORM}, None, name, error=unreadable, response_key=key))
                continue
            action = Action(name, projects, needs, target, response_key=key)
            given = {a.name.value: a.value for a in node.arguments or ()}
            for argument, path in TAG_SLOTS.get(name, []):
                if argument not in given:
                    continue
                if not isinstance(given[argument], VariableNode):
                    action.error = f"pass {name}'s {argument} as a GraphQL variable, so the run can carry its user"
                    continue
                action.tag_slots.append((given[argument].name.value, path))
                for run_config in _run_configs(values.get(given[argument].name.value)):
                    try:
                        action.launch_settings.update(launch_time_settings(run_config))
                    except RefusedRunConfig as refused:
                        action.error = action.error or str(refused)
            actions.append(action)
    return actions


def judge(action: Action, principal: Principal) -> Action:
    """Allow the action when the principal holds the role it needs on every project it touches."""
    action.roles = {p: principal.describe_role(p) for p in action.projects}
    if action.error:
        action.reason = action.error
    elif principal.platform_admin:
        action.allowed = True
    elif action.needs is None:
        action.reason = f"{action.mutation} acts on the whole platform; only a platform admin may"
    elif None in action.projects:
        action.reason = f"{action.mutation}: its target ({action.target}) belongs to no project the platform knows"
    else:
        short = [p for p in sorted(action.projects) if (principal.role_on(p) or 0) < action.needs]
        action.allowed = not short
        if short:
            held = ", ".join(f"{principal.describe_role(p)} on {p}" for p in short)
            needs = f"{action.mutation} on {', '.join(short)} needs {action.needs.name}"
            action.reason = f"{needs}; {principal.name} is {held}"
    return action


def _set_user_tag(holder: Any, path: tuple[str, ...], user: str, dropped: set[str], project_tag: list) -> None:
    if isinstance(holder, list):  # launchMultipleRuns: a list of ExecutionParams
        for item in holder:
            _set_user_tag(item, path, user, dropped, project_tag)
        return
    if not isinstance(holder, dict):
        return
    if len(path) > 1:
        if not isinstance(holder.get(path[0]), dict):
            holder[path[0]] = {}
        _set_user_tag(holder[path[0]], path[1:], user, dropped, project_tag)
        return
    tags = []
    for tag in holder.get(path[0]) or []:
        key = tag.get("key") if isinstance(tag, Mapping) else None
        if isinstance(key, str) and not platform_owned(key):
            if key != USER_TAG:  # replaced below
                tags.append(tag)
        else:
            dropped.add(str(key))
    holder[path[0]] = [*tags, *project_tag, {"key": USER_TAG, "value": user}]


def tag_with_user(variables: dict[str, Any], actions: list[Action], user: str) -> dict[str, Any]:
    """The variables with Dagster's `user` tag set to the signed-in user on each launch (any sent is
    replaced), the platform-owned tags removed (the job's own, from project.yaml, then apply) and
    the run's `algo_platform/project` set. Each action's `dropped_tags` names what its launch lost,
    for the audit log."""
    for action in actions:
        # The run's project, which decides who may read it (web/visibility.py), for a launch of one
        # project's job or assets (a job's own tags say the same).
        owners = [p for p in action.projects if p is not None]
        project_tag = [{"key": PROJECT_TAG, "value": owners[0]}] if len(action.projects) == 1 and owners else []
        for name, path in action.tag_slots:
            _set_user_tag(variables.get(name), path, user, action.dropped_tags, project_tag)
    return variables


# Result types of Dagster's mutations that mean it did not do what was asked.
FAILURE_TYPES = ("Error", "Invalid", "NotFound", "Conflict", "Missing")


def mutation_outcome(body: bytes, response_key: str) -> tuple[bool | None, str]:
    """(done?, what Dagster answered) for one mutation field of a GraphQL response: done is None
    when the request did not ask the result's `__typename` (the Dagster UI always does)."""
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False, "Dagster's answer is not JSON"
    data = answer.get("data") if isinstance(answer, dict) else None
    result = data.get(response_key) if isinstance(data, dict) else None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if result is None:
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        lines = str(first.get("message") or "no result").splitlines() or ["no result"]
        return False, f"Dagster refused it: {lines[0][:200]}"
    typename = result.get("__typename", "") if isinstance(result, dict) else ""
    if not typename:
        return None, "Dagster answered; the request did not ask __typename, so whether it was done is unknown"
    if any(marker in typename for marker in FAILURE_TYPES):
        message = str(result.get("message") or "").splitlines()
        return False, f"Dagster answered {typename}" + (f": {message[0][:200]}" if message else "")
    return True, f"Dagster answered {typename}"
