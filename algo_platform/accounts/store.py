"""Users, their roles per project, sessions and the audit log, in the Dagster instance's own database.

With deploy/dagster.yaml that is PostgreSQL (the tables sit beside Dagster's, prefixed
`algo_platform_`: tables.py); with the embedded instance it is `$DAGSTER_HOME/algo_platform_accounts.db`
(SQLite). `Accounts` is the one handle on it, made of its parts: users and grants (users.py,
passwords as argon2id hashes from argon2-cffi), sign-in throttling (throttle.py), sessions
(sessions.py) and the append-only audit log (audit_log.py).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from algo_platform.accounts import tables
from algo_platform.accounts.audit_log import AuditLog
from algo_platform.accounts.sessions import Sessions
from algo_platform.accounts.throttle import SignInThrottle
from algo_platform.accounts.users import Users


def accounts_url(instance) -> str:
    """The instance's database: its PostgreSQL when it has one, else SQLite beside its files."""
    postgres_url = getattr(instance.run_storage, "postgres_url", None)
    if postgres_url:
        return postgres_url
    return f"sqlite:///{Path(instance.root_directory) / 'algo_platform_accounts.db'}"


class Accounts(Users, SignInThrottle, Sessions, AuditLog):
    """Users, grants, sign-in attempts, sessions and the audit log in one database."""

    def __init__(self, url: str):
        self.url = url
        self.engine = sa.create_engine(url)
        tables.create(self.engine)

    @classmethod
    def for_instance(cls, instance) -> Accounts:
        return cls(accounts_url(instance))

    def close(self) -> None:
        self.engine.dispose()
