"""A grey release of the next-item champion, in the pipeline (`release:` in project.yaml).

- `champion_model` starts it: a candidate that passes the offline gate becomes the `challenger`
  (an alias beside `champion`) at the first stage, instead of replacing the champion for everyone.
- `user_recommendations` serves each user from their arm's model (`release.assignment`), and
  records the arm, the version and the user's activity before exposure with each list: the table
  of what each user was served.
- `release_report` (day D) joins the lists served on D (recommendations of D - 1) with D's cleaned
  events, computes per arm the primary metric and the guardrails over the stage's days so far, and
  applies the decision (`release.decisions`): the registry's aliases and tags move, and the
  decision is in the asset's metadata, the version's tags and the audit log.
"""

import datetime as dt
from dataclasses import asdict

import dagster as dg
import numpy as np
import pandas as pd
from upath import UPath

from algo_platform.core.project import NEXT_ITEM_TASK, Release, Task
from algo_platform.release.assignment import CHALLENGER, CHAMPION, arms, experiment_name, first_day_of
from algo_platform.release.decisions import (
    OPEN,
    PROMOTED,
    ROLLED_BACK,
    RUNNING,
    Decision,
    ReleaseState,
    decide,
    plan_of,
    served_share,
)
from algo_platform.resources.partitions import PeriodPartitions
from algo_platform.resources.project import ProjectResource
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking, ModelVersion


def state_of(tags: dict[str, str] | None) -> ReleaseState | None:
    if tags is None:
        return None
    return ReleaseState(tags["experiment"], tags["challenger_version"], int(tags["stage"]), tags["stage_since"],
                        tags["status"])  # fmt: skip


def start_release(
    tracking: ExperimentTracking, project: str, version: str, day: str, share: float, task: str = NEXT_ITEM_TASK
) -> ReleaseState:
    """The candidate `version` of `task` becomes the challenger at the first stage (`share` percent of
    users), served from the day after `day`, and the routing pyfunc follows."""
    first_day = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    state = ReleaseState(experiment_name(project, task, version, first_day), version, 0, first_day)
    tracking.save_release({k: str(v) for k, v in asdict(state).items()}, challenger=True)
    tracking.set_version_tags(version, {"release_started_on": day, "release_stage": "1"})
    publish_router(tracking, state, share)
    return state


def publish_router(tracking: ExperimentTracking, state: ReleaseState, share: float) -> str:
    """The release's routing pyfunc for online serving, at the stage's share (0 once rolled back, 100
    once promoted: everyone gets the model that won)."""
    champion = tracking.champion()
    return tracking.publish_router({
        "experiment": state.experiment,
        "challenger_percent": str(share),
        "champion_version": champion.version if champion else state.challenger_version,
        "challenger_version": state.challenger_version,
    })  # fmt: skip


def open_release(tracking: ExperimentTracking) -> ReleaseState | None:
    """The release that holds the challenger, running or paused: no other starts until it ends."""
    state = state_of(tracking.release_state())
    return state if state is not None and state.status in OPEN else None


def running_release(tracking: ExperimentTracking) -> tuple[ReleaseState, ModelVersion] | None:
    state = state_of(tracking.release_state())
    challenger = tracking.challenger()
    if state is None or challenger is None or state.status != RUNNING:
        return None
    return state, challenger


def serve_by_arm(
    table: pd.DataFrame,
    challenger_table: pd.DataFrame,
    state: ReleaseState,
    release: Release,
    columns: tuple[str, ...] = ("item_ids", "scores", "model_version", "model_family"),
) -> pd.DataFrame:
    """Each user's list from their arm's model: `table` is the champion's lists, `challenger_table` the
    challenger's (at least for the challenger's users); `columns` are what the arm's model decides."""
    share = release.stages[state.stage]
    arm = arms(state.experiment, table["user_id"].to_numpy(), share)
    on_challenger = arm == CHALLENGER
    theirs = challenger_table.set_index("user_id").reindex(table["user_id"])
    served = table.copy()
    served["arm"] = arm
    for column in columns:
        served.loc[on_challenger, column] = theirs.loc[on_challenger, column].to_numpy()
    served["experiment"] = state.experiment
    served["stage_percent"] = share
    return served


def _outcomes(
    served: pd.DataFrame, events: pd.DataFrame, interaction_types: list[str], engaged: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per served user of the day: played an item of their list (list_play), was active, how many plays;
    with `engaged` (the day's engaged user_id, item_id pairs, an engagement task's label), the share
    of their served items they engaged with (engaged_rate)."""
    plays = events[events["event_type"].isin(interaction_types)][["user_id", "item_id"]]
    per_user = plays.groupby("user_id").size()
    listed = served[["user_id", "item_ids"]].explode("item_ids").rename(columns={"item_ids": "item_id"})
    listed["item_id"] = listed["item_id"].astype("int64")
    hits = listed.merge(plays.drop_duplicates(), on=["user_id", "item_id"])["user_id"].unique()
    frame = served[["user_id", "arm", "model_version", "experiment", "stage_percent", "activity"]].copy()
    frame["list_play_rate"] = frame["user_id"].isin(hits).astype(float)
    frame["plays_per_user"] = frame["user_id"].map(per_user).fillna(0).astype(float)
    frame["active_rate"] = (frame["plays_per_user"] > 0).astype(float)
    if engaged is not None:
        engaged_items = listed.merge(engaged.drop_duplicates(), on=["user_id", "item_id"]).groupby("user_id").size()
        sizes = listed.groupby("user_id").size()
        frame["engaged_rate"] = (frame["user_id"].map(engaged_items).fillna(0) / frame["user_id"].map(sizes)).fillna(0)
    return frame


def _arm_effects(stage_days: pd.DataFrame, release: Release) -> dict:
    from algo_platform.release.statistics import Arm, effect

    metrics = [release.primary_metric, *(g.metric for g in release.guardrails)]
    per_user = stage_days.groupby(["user_id", "arm"], as_index=False).agg(
        activity=("activity", "first"), **{metric: (metric, "mean") for metric in dict.fromkeys(metrics)}
    )
    found = {}
    for metric in metrics:
        arm_data = [per_user[per_user["arm"] == arm] for arm in (CHAMPION, CHALLENGER)]
        a, b = (Arm(d[metric].to_numpy(float), d["activity"].to_numpy(float)) for d in arm_data)
        found[metric] = effect(a, b, release.alpha)
    return found


def apply(
    decision: Decision,
    tracking: ExperimentTracking,
    day: str,
    instance,
    project: str,
    release: Release,
    user: str = "platform",
    role: str | None = None,
    client: str | None = None,
    before: ReleaseState | None = None,
) -> bool:
    """The decision in the registry (aliases, tags, the routing pyfunc at the share now served) and
    the audit log, under `user` (the report itself, or the admin who decided by hand). When the
    release's state is no longer `before` (a decision by hand, or the report, came in between), the
    later one stands and this one is not applied: False, with its audit row."""
    from algo_platform.accounts.store import Accounts

    state = decision.state
    version = state.challenger_version
    current = state_of(tracking.release_state())
    applied = before is None or current == before
    if applied and decision.action != "continue":
        tracking.save_release({k: str(v) for k, v in asdict(state).items()}, challenger=state.status == RUNNING)
    if applied:
        tags = {f"release_{decision.action}_on": day, "release_stage": str(state.stage + 1),
                "release_last_reason": "; ".join(decision.reasons)[:5000]}  # fmt: skip
        if state.status == PROMOTED:
            previous = tracking.champion()
            tracking.promote(version)
            tags |= {"promoted_on": day, "previous_champion": previous.version if previous else "none"}
        if state.status in (PROMOTED, ROLLED_BACK):
            tags["release_outcome"] = state.status
        tracking.set_version_tags(version, tags)
        if decision.action != "continue":
            publish_router(tracking, state, served_share(plan_of(release), state))
    accounts = Accounts.for_instance(instance)
    try:
        target = f"{tracking.registered_model_name} v{version}"
        detail = "; ".join(decision.reasons) if applied else f"not applied: the release changed meanwhile ({current})"
        accounts.record(f"release.{decision.action}", "done" if applied else "failed", user=user, role=role,
                        project=project, target=target, client=client, detail=detail)  # fmt: skip
    finally:
        accounts.close()
    return applied


def report_names(task: Task | None) -> tuple[str, str, str]:
    """(report asset, recommendations asset, tracking resource) of the next-item task or of `task`."""
    if task is None:
        return "release_report", "user_recommendations", "experiment_tracking"
    return f"{task.name}_release_report", f"{task.name}_recommendations", f"{task.name}_tracking"


def _engaged_pairs(events: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The day's (user_id, item_id) pairs that count as engagement by the task's label."""
    import polars as pl

    from algo_platform.tasks.engagement.examples import labelled

    frame = labelled(pl.from_pandas(events).lazy(), task.label.events, task.label.complete_ratio)
    return frame.filter(pl.col("label") == 1).select("user_id", "item_id").collect().to_pandas()


def build_release_report(
    partitions: PeriodPartitions, release: Release, task: Task | None = None
) -> dg.AssetsDefinition:
    """The next-item task's `release_report`, or `<task>_release_report` of a further task."""
    name, recommendations, tracking_key = report_names(task)

    @dg.asset(
        name=name,
        ins={"cleaned_events": dg.AssetIn()},
        # The lists served on day D are the recommendations of the day before: read here when they exist
        # (a day ingested before anything was served, a history import, has none to judge).
        deps=[
            dg.AssetDep(
                recommendations, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
            )
        ],
        partitions_def=partitions,
        group_name="serving",
        kinds={"pandas", "mlflow"},
        required_resource_keys={tracking_key, "storage", "project"},
        description="The grey release's feedback of the day, per arm, and its decision (docs/grey-release.md).",
    )
    def release_report(context: dg.AssetExecutionContext, cleaned_events: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        """Feedback per arm over the stage's days so far, the always-valid effect, and the decision."""
        tracking: ExperimentTracking = getattr(context.resources, tracking_key)
        storage: PlatformStorage = context.resources.storage
        project: ProjectResource = context.resources.project
        day = context.partition_key
        yesterday = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
        lists = UPath(storage.layout.table(recommendations, yesterday))
        served_lists = pd.read_parquet(str(lists)) if lists.exists() else pd.DataFrame()
        served_by_arm = "arm" in served_lists.columns
        state = state_of(tracking.release_state()) if served_by_arm else None
        if state is None or state.status != RUNNING:
            return dg.Output(pd.DataFrame(), metadata={"decision": "none", "why": f"no release served {day}'s lists"})
        share = release.stages[state.stage]
        # Lists built before the stage changed (its first day's, when the change came after them) are not its.
        served = served_lists[
            (served_lists["experiment"] == state.experiment) & (served_lists["stage_percent"] == share)
        ]
        if served.empty:
            why = f"{day}'s lists were served at another stage than {share:g} %: the stage starts with the next ones"
            return dg.Output(pd.DataFrame(), metadata={"decision": "none", "why": why})
        if "model_version" not in served:  # a task's lists name their ranker
            served = served.assign(model_version=served["ranker_version"])
        engaged = _engaged_pairs(cleaned_events, task) if task is not None else None
        today = _outcomes(served, cleaned_events, project.interaction_types, engaged).assign(day=day)
        earlier = _stage_days_before(storage, name, state, share, day)
        stage_days = pd.concat([earlier, today], ignore_index=True)
        effects = _arm_effects(stage_days, release)
        primary = effects.pop(release.primary_metric)
        feedback = day if len(cleaned_events) else _last_feedback(earlier)
        decision = decide(plan_of(release), state, day, primary, effects, feedback)
        if not apply(decision, tracking, day, context.instance, project.name, release, before=state):
            context.log.warning(f"release {state.experiment}: changed while judged; the change made meanwhile stands")
        context.log.info(f"release {state.experiment}: {decision.action}: " + "; ".join(decision.reasons))
        metadata = {
            "decision": decision.action,
            "why": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "experiment": state.experiment,
            "stage_percent": release.stages[state.stage],
            "next_stage_percent": release.stages[decision.state.stage],
            "status": decision.state.status,
            "champion_users": primary.users[0],
            "challenger_users": primary.users[1],
            f"champion_{release.primary_metric}": primary.champion_mean,
            f"challenger_{release.primary_metric}": primary.challenger_mean,
            "effect": primary.difference,
            "effect_low": primary.low,
            "effect_high": primary.high,
            "cuped_variance_reduction": primary.variance_reduction,
            **{f"guardrail_{metric}_effect": found.relative for metric, found in effects.items()},
        }
        step = (
            dt.date.fromisoformat(day) - dt.date.fromisoformat(first_day_of(state.experiment) or state.stage_since)
        ).days
        numbers = {k: v for k, v in metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        run_id = tracking.log_release_day(state.experiment, day, step, numbers, _report_text(day, metadata))
        metadata["mlflow_run"] = dg.MetadataValue.url(tracking.run_url(run_id))
        return dg.Output(today, metadata=metadata)

    return release_report


def _stage_days_before(
    storage: PlatformStorage, name: str, state: ReleaseState, share: float, day: str
) -> pd.DataFrame:
    """The outcomes this asset (`name`) recorded for the stage's earlier days (its own partitions)."""
    frames = []
    current = dt.date.fromisoformat(state.stage_since)
    while current < dt.date.fromisoformat(day):
        path = UPath(storage.layout.table(name, current.isoformat()))
        if path.exists():
            frame = pd.read_parquet(str(path))
            if len(frame) and "experiment" in frame:
                frames.append(frame[(frame["experiment"] == state.experiment) & (frame["stage_percent"] == share)])
        current += dt.timedelta(days=1)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _last_feedback(earlier: pd.DataFrame) -> str | None:
    return str(earlier["day"].max()) if len(earlier) else None


def _report_text(day: str, metadata: dict) -> str:
    """The day's report as markdown, for the release's MLflow run."""
    why = metadata["why"].value if hasattr(metadata["why"], "value") else str(metadata["why"])
    figures = "\n".join(f"| {key} | {value} |" for key, value in metadata.items() if key != "why")
    title = f"# {metadata['experiment']}, {day}: {metadata['decision']}"
    return f"{title}\n\n{why}\n\n| figure | value |\n|---|---|\n{figures}\n"


def served_activity(table: pd.DataFrame, sequences_path: str) -> np.ndarray:
    """Each user's interactions before the lists are served (CUPED's covariate)."""
    import pyarrow.parquet as pq

    lengths = pq.read_table(sequences_path, columns=["user_id", "history_length", "holdout_length"]).to_pandas()
    per_user = (lengths["history_length"] + lengths["holdout_length"]).set_axis(lengths["user_id"])
    return table["user_id"].map(per_user).fillna(0).to_numpy(float)
