"""What a release does after each day's feedback: continue, advance a stage, promote the challenger,
roll it back, or pause. A pure function of the plan, the state and the day's statistics, so the
report asset, the CLI and the tests decide alike; the caller applies and records the decision.

The order of the rules is the order of their urgency:
1. a release that is not running stays as it is (paused, finished);
2. stale feedback (no events for the served lists for `stale_days`) pauses: nothing can be judged;
3. a sample-ratio mismatch pauses: the assignment is broken, so no effect can be trusted;
4. significant harm on the primary metric, or a guardrail worse than its margin (its always-valid
   interval entirely beyond it), rolls back at once;
5. until the stage's minimum days and users per arm are met, it continues;
6. then it advances to the next stage, or, at the last stage before everyone, promotes the
   challenger if the primary metric is not worse than the champion's by more than the margin (the
   interval's lower end above -margin); else it keeps collecting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from algo_platform.release.statistics import SRM_P_VALUE, Effect, sample_ratio_p_value

RUNNING, PAUSED, ROLLED_BACK, PROMOTED = "running", "paused", "rolled_back", "promoted"


@dataclass(frozen=True)
class Plan:
    stages: tuple[float, ...]  # challenger's share of users per stage, in percent, increasing
    min_days: int
    min_users: int  # per arm
    margin: float  # relative: the challenger may be this much worse on the primary metric at the end
    guardrail_margins: dict[str, float]  # metric -> relative margin
    alpha: float
    stale_days: int


def plan_of(release) -> Plan:
    """The decision rules of project.yaml's `release:` section (`core.project.Release`)."""
    margins = {guardrail.metric: guardrail.margin for guardrail in release.guardrails}
    return Plan(tuple(release.stages), release.min_days, release.min_users, release.margin, margins, release.alpha,
                release.stale_days)  # fmt: skip


@dataclass(frozen=True)
class ReleaseState:
    experiment: str
    challenger_version: str
    stage: int  # index into plan.stages
    stage_since: str  # the first day the stage's lists were served (ISO)
    status: str = RUNNING

    def share(self, plan: Plan) -> float:
        return plan.stages[self.stage]


@dataclass(frozen=True)
class Decision:
    action: str  # continue | advance | promote | roll_back | pause
    reasons: tuple[str, ...]
    state: ReleaseState


def _final_stage(plan: Plan, stage: int) -> bool:
    return stage + 1 >= len(plan.stages) or plan.stages[stage + 1] >= 100


def decide(
    plan: Plan,
    state: ReleaseState,
    day: str,
    primary: Effect,
    guardrails: dict[str, Effect],
    last_feedback_day: str | None,
) -> Decision:
    """The decision after the feedback of `day` (to the lists served on it)."""
    if state.status != RUNNING:
        return Decision("continue", (f"release is {state.status}",), state)
    today = dt.date.fromisoformat(day)
    if last_feedback_day is None or (today - dt.date.fromisoformat(last_feedback_day)).days >= plan.stale_days:
        reason = f"no feedback since {last_feedback_day or 'the release started'} ({plan.stale_days} days allowed)"
        return Decision("pause", (reason,), replace(state, status=PAUSED))
    share = state.share(plan) / 100
    srm = sample_ratio_p_value(primary.users, share)
    if srm < SRM_P_VALUE:
        reason = (
            f"sample-ratio mismatch: {primary.users[0]:,} champion and {primary.users[1]:,} challenger users, "
            f"planned {1 - share:.0%}/{share:.0%} (chi-square p={srm:.2g})"
        )
        return Decision("pause", (reason,), replace(state, status=PAUSED))
    if primary.significant and primary.difference < 0:
        reason = (
            f"primary metric worse: {primary.challenger_mean:.4f} vs {primary.champion_mean:.4f} "
            f"({primary.relative:+.1%}, interval {primary.low:+.4f}..{primary.high:+.4f})"
        )
        return Decision("roll_back", (reason,), replace(state, status=ROLLED_BACK))
    for name, found in guardrails.items():
        allowed = plan.guardrail_margins.get(name, 0.0) * abs(found.champion_mean)
        if found.high < -allowed:
            reason = (
                f"guardrail {name} worse beyond its margin: {found.relative:+.1%} (interval up to {found.high:+.4f})"
            )
            return Decision("roll_back", (reason,), replace(state, status=ROLLED_BACK))
    served_days = (today - dt.date.fromisoformat(state.stage_since)).days + 1
    if served_days < plan.min_days or min(primary.users) < plan.min_users:
        reason = (
            f"stage {state.stage + 1} ({state.share(plan):g} %): {served_days} of {plan.min_days} days, "
            f"{min(primary.users):,} of {plan.min_users:,} users per arm"
        )
        return Decision("continue", (reason,), state)
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    if not _final_stage(plan, state.stage):
        reason = f"stage {state.stage + 1} met its minimum with no harm: {plan.stages[state.stage + 1]:g} % next"
        return Decision("advance", (reason,), replace(state, stage=state.stage + 1, stage_since=tomorrow))
    floor = -plan.margin * abs(primary.champion_mean)
    if primary.low >= floor:
        reason = (
            f"not worse than the champion within {plan.margin:.0%}: {primary.challenger_mean:.4f} vs "
            f"{primary.champion_mean:.4f} (interval {primary.low:+.4f}..{primary.high:+.4f})"
        )
        return Decision("promote", (reason,), replace(state, status=PROMOTED))
    reason = f"last stage: not yet shown within {plan.margin:.0%} of the champion (interval low {primary.low:+.4f})"
    return Decision("continue", (reason,), state)


OPEN = (RUNNING, PAUSED)  # a release that holds the challenger: no other starts until it ends
BY_HAND = ("pause", "resume", "advance", "roll_back")


class ReleaseActionError(ValueError):
    """An admin's action that the release's state does not allow; the message says why."""


def served_share(plan: Plan, state: ReleaseState) -> float:
    """The challenger's share of users as served: its stage's while running, everyone once promoted,
    no one while paused or after a roll-back (the champion answers every user)."""
    if state.status == RUNNING:
        return state.share(plan)
    return 100.0 if state.status == PROMOTED else 0.0


def by_hand(plan: Plan, state: ReleaseState, action: str, day: str, user: str, reason: str = "") -> Decision:
    """A project admin's decision on `day` (the last day judged): the same kinds of decision the
    report takes, recorded alike. A resumed or advanced stage starts the day after, with its clock
    and its users counted afresh."""
    if action not in BY_HAND:
        raise ReleaseActionError(f"unknown action {action!r}: choose {', '.join(BY_HAND)}")
    allowed = {"pause": (RUNNING,), "resume": (PAUSED,), "advance": OPEN, "roll_back": OPEN}[action]
    if state.status not in allowed:
        raise ReleaseActionError(
            f"release {state.experiment} is {state.status.replace('_', ' ')}: "
            f"{action.replace('_', ' ')} needs it {' or '.join(allowed)}"
        )
    because = (f"{action.replace('_', ' ')} by {user}" + (f": {reason}" if reason else ""),)
    tomorrow = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    if action == "pause":
        return Decision("pause", because, replace(state, status=PAUSED))
    if action == "resume":
        return Decision("resume", because, replace(state, status=RUNNING, stage_since=tomorrow))
    if action == "roll_back":
        return Decision("roll_back", because, replace(state, status=ROLLED_BACK))
    if _final_stage(plan, state.stage):
        return Decision("promote", because, replace(state, status=PROMOTED))
    return Decision("advance", because, replace(state, stage=state.stage + 1, stage_since=tomorrow, status=RUNNING))
