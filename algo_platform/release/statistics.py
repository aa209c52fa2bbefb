"""The statistics of a release, per metric: the challenger's effect on the champion's users with an
interval, a test that may be looked at every day, a sample-ratio check, and CUPED.

- **The test** is the mixture sequential probability ratio test (mSPRT; Johari, Pekelis, Walsh,
  "Always valid inference", 2017; what Optimizely's stats engine runs): for the difference of the
  arms' means, with a normal mixture of effects around zero, the likelihood ratio after any number
  of looks stays below 1/alpha with probability at least 1 - alpha when there is no effect, so a
  release may be judged every day without inflating false alarms. Its always-valid interval is the
  set of effects the test would not reject.
- **CUPED** (Deng, Xu, Kohavi, Walker, 2013): each user's outcome less theta times their activity
  before exposure (theta from both arms pooled), which removes the variance that activity explains
  and leaves the difference of means unbiased (assignment is independent of the covariate).
- **Sample-ratio mismatch**: a chi-square test of the users per arm against the planned shares
  (scipy); a p-value under 0.001 means the assignment is broken and no effect can be trusted.

Why not a library's sequential test: spotify-confidence's group-sequential z-tests would pull
Jupyter and Bokeh in and pin pandas below 3; statsmodels has no always-valid test. The mSPRT is
a closed form (below) and the A/A study in benchmarks/release_statistics.py checks its error rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SRM_P_VALUE = 0.001


@dataclass(frozen=True)
class Arm:
    """One arm's per-user outcomes (and each user's activity before exposure, for CUPED)."""

    outcomes: np.ndarray
    covariate: np.ndarray | None = None


@dataclass(frozen=True)
class Effect:
    champion_mean: float
    challenger_mean: float
    difference: float  # challenger - champion
    low: float  # always-valid interval of the difference at the release's alpha
    high: float
    likelihood_ratio: float  # mSPRT statistic; significant when >= 1 / alpha
    significant: bool
    variance_reduction: float  # 1 - CUPED variance / plain variance (0 without a covariate)
    users: tuple[int, int]  # champion, challenger

    @property
    def relative(self) -> float:
        return self.difference / self.champion_mean if self.champion_mean else 0.0


def cuped(champion: Arm, challenger: Arm) -> tuple[np.ndarray, np.ndarray, float]:
    """Both arms' outcomes less theta * (covariate - its pooled mean), and the share of variance removed."""
    if champion.covariate is None or challenger.covariate is None:
        return champion.outcomes, challenger.outcomes, 0.0
    y = np.concatenate([champion.outcomes, challenger.outcomes]).astype(float)
    x = np.concatenate([champion.covariate, challenger.covariate]).astype(float)
    variance = x.var()
    if variance == 0 or len(y) < 3:
        return champion.outcomes, challenger.outcomes, 0.0
    theta = np.cov(x, y, bias=True)[0, 1] / variance
    adjusted = y - theta * (x - x.mean())
    removed = 1 - adjusted.var() / y.var() if y.var() > 0 else 0.0
    n = len(champion.outcomes)
    return adjusted[:n], adjusted[n:], float(removed)


def msprt(difference: float, variance: float, mixture_variance: float) -> float:
    """The mSPRT likelihood ratio of a difference of means with estimate variance `variance`, against
    no effect, mixing effects N(0, mixture_variance)."""
    if variance <= 0:
        return math.inf if difference else 1.0
    total = variance + mixture_variance
    exponent = difference**2 * mixture_variance / (2 * variance * total)
    return math.sqrt(variance / total) * math.exp(min(exponent, 700.0))


def always_valid_interval(difference: float, variance: float, mixture_variance: float, alpha: float) -> tuple:
    """The effects the mSPRT would not reject at `alpha`: valid whenever it is looked at."""
    if variance <= 0:
        return difference, difference
    total = variance + mixture_variance
    half = math.sqrt(variance * total / mixture_variance * (2 * math.log(1 / alpha) + math.log(total / variance)))
    return difference - half, difference + half


def effect(champion: Arm, challenger: Arm, alpha: float, mixture_effect: float = 0.05) -> Effect:
    """The challenger's effect on the arm's mean outcome. The mixture's spread is `mixture_effect`
    times the champion's mean: the size of effect the test is most sensitive to."""
    a, b, reduced = cuped(champion, challenger)
    n_a, n_b = len(a), len(b)
    mean_a = float(np.mean(champion.outcomes)) if n_a else 0.0
    mean_b = float(np.mean(challenger.outcomes)) if n_b else 0.0
    if n_a < 2 or n_b < 2:
        return Effect(mean_a, mean_b, mean_b - mean_a, -math.inf, math.inf, 1.0, False, reduced, (n_a, n_b))
    difference = float(np.mean(b) - np.mean(a))
    variance = float(np.var(a, ddof=1) / n_a + np.var(b, ddof=1) / n_b)
    mixture = max((mixture_effect * abs(mean_a)) ** 2, 1e-12)
    ratio = msprt(difference, variance, mixture)
    low, high = always_valid_interval(difference, variance, mixture, alpha)
    return Effect(mean_a, mean_b, difference, low, high, ratio, ratio >= 1 / alpha, reduced, (n_a, n_b))


def fixed_horizon_p_value(champion: np.ndarray, challenger: np.ndarray) -> float:
    """The two-sided z-test a fixed-horizon analysis runs once (statsmodels); peeked at every day, its
    false alarms add up (benchmarks/release_statistics.py)."""
    from statsmodels.stats.weightstats import ztest

    return float(ztest(challenger, champion)[1])


def sample_ratio_p_value(users: tuple[int, int], challenger_share: float) -> float:
    """Chi-square p-value of the users per arm (champion, challenger) against the planned share."""
    from scipy.stats import chisquare

    total = sum(users)
    if total == 0 or not 0 < challenger_share < 1:
        return 1.0
    expected = [total * (1 - challenger_share), total * challenger_share]
    return float(chisquare(list(users), expected).pvalue)
