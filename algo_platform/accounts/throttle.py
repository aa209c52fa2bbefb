"""Sign-in throttling: failed attempts lock a user name, or an address, for a while."""

from __future__ import annotations

import time

import sqlalchemy as sa

from algo_platform.accounts.tables import attempts

# Failed sign-ins that lock a user name, and the window they are counted in (also the lock's length).
FAILURES_BEFORE_LOCK = 5
FAILURES_FROM_ONE_ADDRESS_BEFORE_LOCK = 20
LOCK_SECONDS = 15 * 60


class SignInThrottle:
    """Part of `Accounts`: needs `self.engine`."""

    engine: sa.Engine

    def count_attempt(self, name: str, client: str | None, now: float | None = None) -> tuple[int, float | None]:
        """Count a sign-in attempt before its password is checked: (its id, and when the lock on this
        name or address ends if one is on it, in which case the attempt is not counted).

        The attempt is stored first and the attempts counted after, each in its own transaction:
        of any set of attempts let through, the last to count saw all the others, so no more than
        FAILURES_BEFORE_LOCK attempts on a name are checked between two successful sign-ins, however
        many arrive at once."""
        now = now or time.time()
        since = now - LOCK_SECONDS
        with self.engine.begin() as connection:
            attempt = connection.execute(
                attempts.insert().values(at=now, user_name=name[:128], client=client)
            ).inserted_primary_key[0]
        recent = sa.select(attempts.c.at).where(attempts.c.at >= since).order_by(attempts.c.at)
        with self.engine.connect() as connection:
            by_name = list(connection.execute(recent.where(attempts.c.user_name == name[:128])).scalars())
            by_client = list(connection.execute(recent.where(attempts.c.client == client)).scalars()) if client else []
        ends = []
        if len(by_name) > FAILURES_BEFORE_LOCK:
            ends.append(by_name[-FAILURES_BEFORE_LOCK - 1] + LOCK_SECONDS)
        if len(by_client) > FAILURES_FROM_ONE_ADDRESS_BEFORE_LOCK:
            ends.append(by_client[-FAILURES_FROM_ONE_ADDRESS_BEFORE_LOCK - 1] + LOCK_SECONDS)
        if not ends:
            return attempt, None
        with self.engine.begin() as connection:  # a refused attempt does not lengthen the lock
            connection.execute(attempts.delete().where(attempts.c.id == attempt))
        return attempt, max(ends)

    def clear_attempts(self, name: str) -> None:
        """A successful sign-in: the name's failed attempts no longer count."""
        with self.engine.begin() as connection:
            connection.execute(attempts.delete().where(attempts.c.user_name == name))
