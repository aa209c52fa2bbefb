"""Server-side sessions: the signed cookie names one by a random id, whose hash alone is stored."""

from __future__ import annotations

import hashlib
import secrets
import time

import sqlalchemy as sa

from algo_platform.accounts.tables import sessions


def _hashed(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Part of `Accounts`: needs `self.engine`."""

    engine: sa.Engine

    def start_session(self, name: str, max_age: float) -> str:
        """A new session's id, for the signed cookie; only its hash is stored. Sessions older than
        `max_age` are removed on the way."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as connection:
            connection.execute(sessions.delete().where(sessions.c.started_at < now - max_age))
            connection.execute(sessions.insert().values(id_hash=_hashed(session_id), user_name=name, started_at=now))
        return session_id

    def end_session(self, session_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sessions.delete().where(sessions.c.id_hash == _hashed(session_id)))

    def session_user(self, session_id: str, max_age: float) -> str | None:
        """The user of a live session (signed in less than `max_age` seconds ago, not signed out)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(sessions.c.user_name).where(
                    (sessions.c.id_hash == _hashed(session_id)) & (sessions.c.started_at >= time.time() - max_age)
                )
            ).first()
        return row.user_name if row else None
