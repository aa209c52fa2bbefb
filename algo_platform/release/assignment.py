"""Sticky assignment: which arm a user is in, by one function wherever assignment happens (the
recommendations asset, the release's pyfunc, the report).

A user's bucket is a salted hash of the experiment and the user id, 0..9,999: the same user gets
the same bucket on every day, in every process, on every machine. The challenger serves buckets
under its share (in basis points), so widening a stage from 5 % to 25 % keeps the first 5 % on the
challenger and adds users; a new experiment (another challenger) reshuffles everyone.
"""

from __future__ import annotations

import hashlib

import numpy as np

BUCKETS = 10_000
CHAMPION, CHALLENGER = "champion", "challenger"


def bucket(experiment: str, user_id: int) -> int:
    digest = hashlib.blake2b(f"{experiment}:{int(user_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def arm_of(experiment: str, user_id: int, challenger_percent: float) -> str:
    return CHALLENGER if bucket(experiment, user_id) < round(challenger_percent * BUCKETS / 100) else CHAMPION


def arms(experiment: str, user_ids: np.ndarray, challenger_percent: float) -> np.ndarray:
    """`arm_of` for every user (an array of CHAMPION / CHALLENGER)."""
    return np.array(
        [arm_of(experiment, user, challenger_percent) for user in np.asarray(user_ids).tolist()], dtype=object
    )


def experiment_name(project: str, task: str, challenger_version: str, first_day: str) -> str:
    """One experiment per release of a challenger (a version released again is a new experiment, with
    its own users and its own history): its name salts the hash."""
    return f"{project}/{task}/v{challenger_version}/{first_day}"


def first_day_of(experiment: str) -> str | None:
    """The first day an experiment served (the last part of `experiment_name`); None for a name of an
    earlier platform's (`<project>/<task>/v<version>`), which did not carry it."""
    import datetime as dt

    last = experiment.rsplit("/", 1)[-1]
    try:
        return dt.date.fromisoformat(last).isoformat()
    except ValueError:
        return None
