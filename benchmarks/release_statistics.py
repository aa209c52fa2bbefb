"""The release statistics alone, on simulated experiments (issue 43).

`python -m benchmarks.release_statistics [--experiments 500] [--days 14]`:
1. **A/A, peeked daily**: `experiments` experiments with no effect, each looked at every day for
   `days` days (users arrive each day; each user's outcome is a play with probability that depends
   on their activity before exposure). The share of experiments that ever raise an alarm, for the
   mSPRT the release runs and for a fixed-horizon z-test looked at every day.
2. **CUPED**: the variance of the difference of means with and without the pre-exposure covariate.
3. **Days to detect a 3 % lift at 5 % exposure**: how many days the mSPRT takes on the same
   simulator, against the days a fixed-horizon test needs by a power calculation (statsmodels).
Results: `results/release_statistics.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from algo_platform.release.statistics import Arm, effect, fixed_horizon_p_value

RESULTS = Path(__file__).parent / "results"


def simulate_day(rng: np.random.Generator, users: int, lift: float, share: float) -> tuple[Arm, Arm]:
    """One day's new users: activity before exposure (the covariate) drives the chance of a play."""
    activity = rng.gamma(2.0, 2.0, users)
    base = np.clip(0.02 + 0.02 * activity, 0, 0.9)
    challenger = rng.random(users) < share
    played = rng.random(users) < np.where(challenger, base * (1 + lift), base)
    return (
        Arm(played[~challenger].astype(float), activity[~challenger]),
        Arm(played[challenger].astype(float), activity[challenger]),
    )


def run_experiment(rng, days: int, users_per_day: int, lift: float, share: float, alpha: float, use_cuped: bool):
    """(first day the mSPRT rejects, first day the daily-peeked z-test rejects), None when never."""
    champion, challenger = [], []
    msprt_day = z_day = None
    for day in range(1, days + 1):
        a, b = simulate_day(rng, users_per_day, lift, share)
        champion.append(a)
        challenger.append(b)
        arm_a = Arm(np.concatenate([x.outcomes for x in champion]),
                    np.concatenate([x.covariate for x in champion]) if use_cuped else None)  # fmt: skip
        arm_b = Arm(np.concatenate([x.outcomes for x in challenger]),
                    np.concatenate([x.covariate for x in challenger]) if use_cuped else None)  # fmt: skip
        if msprt_day is None and effect(arm_a, arm_b, alpha).significant:
            msprt_day = day
        if z_day is None and fixed_horizon_p_value(arm_a.outcomes, arm_b.outcomes) < alpha:
            z_day = day
    return msprt_day, z_day


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--users-per-day", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--out", default=str(RESULTS / "release_statistics.json"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    aa = [run_experiment(rng, args.days, args.users_per_day, 0.0, 0.5, args.alpha, True)
          for _ in range(args.experiments)]  # fmt: skip
    aa_seconds = time.perf_counter() - started
    msprt_alarms = sum(m is not None for m, _ in aa) / len(aa)
    z_alarms = sum(z is not None for _, z in aa) / len(aa)

    # CUPED: the variance of the estimate over repeated A/A days, with and without the covariate, for
    # a played-or-not outcome (the primary metric) and a count of plays (a guardrail).
    reduction = {}
    for outcome in ("played", "plays"):
        plain, adjusted = [], []
        for _ in range(300):
            a, b = simulate_day(rng, 20_000, 0.0, 0.5)
            if outcome == "plays":  # plays of the served list: Poisson, its rate the user's activity
                a = Arm(rng.poisson(0.3 * a.covariate).astype(float), a.covariate)
                b = Arm(rng.poisson(0.3 * b.covariate).astype(float), b.covariate)
            plain.append(effect(Arm(a.outcomes), Arm(b.outcomes), args.alpha).difference)
            adjusted.append(effect(a, b, args.alpha).difference)
        reduction[outcome] = float(1 - np.var(adjusted) / np.var(plain))

    # 3 % lift at 5 % exposure: days until the mSPRT detects it, over 100 experiments of 60 days.
    users = 20_000
    detect = [run_experiment(rng, 60, users, 0.03, 0.05, args.alpha, True)[0] for _ in range(100)]
    detected = [d for d in detect if d is not None]
    from statsmodels.stats.power import NormalIndPower

    base = float(np.mean(np.clip(0.02 + 0.02 * rng.gamma(2.0, 2.0, 200_000), 0, 0.9)))
    sd = np.sqrt(base * (1 - base))
    per_arm = NormalIndPower().solve_power(effect_size=0.03 * base / sd, alpha=args.alpha, power=0.8,
                                           ratio=0.95 / 0.05)  # fmt: skip
    fixed_days = per_arm / (users * 0.05)  # challenger users needed / challenger users per day
    summary = {
        "experiments": args.experiments,
        "days": args.days,
        "users_per_day": args.users_per_day,
        "alpha": args.alpha,
        "aa_false_alarm_msprt": msprt_alarms,
        "aa_false_alarm_fixed_horizon_peeked_daily": z_alarms,
        "aa_seconds": aa_seconds,
        "cuped_variance_reduction": reduction,
        "lift_3pct_at_5pct_exposure": {
            "users_per_day": users,
            "detected_share_within_60_days": len(detected) / len(detect),
            "median_days_msprt": float(np.median(detected)) if detected else None,
            "fixed_horizon_days_at_80pct_power": float(fixed_days),
        },
    }
    print(json.dumps(summary, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
