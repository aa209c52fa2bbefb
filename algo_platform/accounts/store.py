"""Users, their roles per project, and the audit log, in the Dagster instance's own database.

With deploy/dagster.yaml that is PostgreSQL (the tables sit beside Dagster's, prefixed
`algo_platform_`); with the embedded instance it is `$DAGSTER_HOME/algo_platform_accounts.db`
(SQLite). Passwords are argon2id hashes (argon2-cffi). The audit table refuses UPDATE and DELETE
with a trigger in both databases, so the log is append-only for the platform itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}"
# Failed sign-ins that lock a user name, and the window they are counted in (also the lock's length).
FAILURES_BEFORE_LOCK = 5
FAILURES_FROM_ONE_ADDRESS_BEFORE_LOCK = 20
LOCK_SECONDS = 15 * 60


class Role(IntEnum):
    """A user's role on one project; each includes the ones below it."""

    viewer = 1
    launcher = 2
    editor = 3
    admin = 4


class AccountError(ValueError):
    """A refused change to users or grants; the message names the user and the fix."""


metadata = sa.MetaData()
users = sa.Table(
    "algo_platform_users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=True),  # None: signs in through the proxy only
    sa.Column("platform_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # Sessions signed before this time are refused: disabling or a new password ends them at once.
    sa.Column("sessions_valid_after", sa.Float, nullable=False, default=0.0),
)
grants = sa.Table(
    "algo_platform_grants",
    metadata,
    sa.Column("user_name", sa.String(128), sa.ForeignKey("algo_platform_users.name"), primary_key=True),
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
)
audit = sa.Table(
    "algo_platform_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("user_name", sa.String(128), nullable=True, index=True),
    sa.Column("role", sa.String(32), nullable=True),
    sa.Column("project", sa.String(128), nullable=True, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

# Each sign-in attempt is counted here before its password is checked, so concurrent attempts
# cannot all pass the lock check first; a successful sign-in clears its name's attempts.
attempts = sa.Table(
    "algo_platform_sign_in_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("user_name", sa.String(128), nullable=False, index=True),
    sa.Column("client", sa.String(64), nullable=True, index=True),
)
# Signed-in sessions: the cookie names one by a random id; signing out deletes it, so a copied
# cookie stops working at once.
sessions = sa.Table(
    "algo_platform_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the id: the table holds no live id
    sa.Column("user_name", sa.String(128), nullable=False, index=True),
    sa.Column("started_at", sa.Float, nullable=False),
)

_APPEND_ONLY = {
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS algo_platform_audit_no_{verb.lower()} BEFORE {verb} ON algo_platform_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION algo_platform_audit_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql",
        # CREATE OR REPLACE (PostgreSQL 14+): replicas starting together do not race on a drop.
        "CREATE OR REPLACE TRIGGER algo_platform_audit_append_only BEFORE UPDATE OR DELETE ON algo_platform_audit "
        "FOR EACH ROW EXECUTE FUNCTION algo_platform_audit_append_only()",
    ],
}


def printable(text: str | None, limit: int) -> str | None:
    """`text` as the audit log stores it: control characters (a newline would forge a line in
    `algo-platform audit`) written as escapes, and at most `limit` characters, marked when cut."""
    if text is None:
        return None
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hashed(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, and what they hold, read fresh from the database for each request."""

    name: str
    platform_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)

    def role_on(self, project: str | None) -> Role | None:
        if self.platform_admin:
            return Role.admin
        return self.roles.get(project) if project else None

    def describe_role(self, project: str | None) -> str:
        if self.platform_admin:
            return "platform-admin"
        role = self.role_on(project)
        return role.name if role else "none"


@dataclass(frozen=True)
class AuditEntry:
    at: float
    user: str | None
    role: str | None
    project: str | None
    action: str
    target: str | None
    outcome: str
    client: str | None
    detail: str | None

    def as_dict(self) -> dict:
        when = dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(timespec="seconds")
        return {"time": when, **{k: v for k, v in self.__dict__.items() if k != "at"}}


def accounts_url(instance) -> str:
    """The instance's database: its PostgreSQL when it has one, else SQLite beside its files."""
    postgres_url = getattr(instance.run_storage, "postgres_url", None)
    if postgres_url:
        return postgres_url
    return f"sqlite:///{Path(instance.root_directory) / 'algo_platform_accounts.db'}"


class Accounts:
    """Users, grants and the audit log in one database (see the module docstring)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = sa.create_engine(url)
        self.hasher = PasswordHasher()  # argon2id, the library's current parameters
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            for statement in _APPEND_ONLY.get(self.engine.dialect.name, []):
                connection.exec_driver_sql(statement)

    @classmethod
    def for_instance(cls, instance) -> Accounts:
        return cls(accounts_url(instance))

    def close(self) -> None:
        self.engine.dispose()

    # Users and grants -------------------------------------------------------------------------

    def add_user(self, name: str, password: str | None, platform_admin: bool = False) -> None:
        if not re.fullmatch(NAME_PATTERN, name):
            raise AccountError(f"user name {name!r}: use letters, digits and . _ @ - (up to 128)")
        with self.engine.begin() as connection:
            if connection.execute(sa.select(users.c.name).where(users.c.name == name)).first():
                raise AccountError(f"user {name!r} exists; change it with `algo-platform users grant` or `passwd`")
            connection.execute(
                users.insert().values(
                    name=name,
                    password_hash=self.hasher.hash(password) if password else None,
                    platform_admin=platform_admin,
                    disabled=False,
                    created_at=time.time(),
                    sessions_valid_after=0.0,
                )
            )

    def _require(self, connection, name: str) -> sa.Row:
        row = connection.execute(sa.select(users).where(users.c.name == name)).first()
        if row is None:
            raise AccountError(f"no user {name!r}; add one with `algo-platform users add {name}`")
        return row

    def set_password(self, name: str, password: str) -> None:
        with self.engine.begin() as connection:
            self._require(connection, name)
            connection.execute(
                users.update()
                .where(users.c.name == name)
                .values(password_hash=self.hasher.hash(password), sessions_valid_after=time.time())
            )
            connection.execute(sessions.delete().where(sessions.c.user_name == name))

    def set_disabled(self, name: str, disabled: bool) -> None:
        with self.engine.begin() as connection:
            self._require(connection, name)
            values = {"disabled": disabled}
            if disabled:
                values["sessions_valid_after"] = time.time()
                connection.execute(sessions.delete().where(sessions.c.user_name == name))
            connection.execute(users.update().where(users.c.name == name).values(**values))

    def grant(self, name: str, project: str, role: Role) -> None:
        with self.engine.begin() as connection:
            self._require(connection, name)
            key = (grants.c.user_name == name) & (grants.c.project == project)
            connection.execute(grants.delete().where(key))
            connection.execute(grants.insert().values(user_name=name, project=project, role=role.name))

    def revoke(self, name: str, project: str) -> bool:
        with self.engine.begin() as connection:
            self._require(connection, name)
            key = (grants.c.user_name == name) & (grants.c.project == project)
            return connection.execute(grants.delete().where(key)).rowcount > 0

    def list_users(self) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(users).order_by(users.c.name)).all()
            held = connection.execute(sa.select(grants).order_by(grants.c.project)).all()
        roles: dict[str, dict[str, str]] = {}
        for grant_row in held:
            roles.setdefault(grant_row.user_name, {})[grant_row.project] = grant_row.role
        return [
            {
                "name": row.name,
                "platform_admin": row.platform_admin,
                "disabled": row.disabled,
                "password": row.password_hash is not None,
                "roles": roles.get(row.name, {}),
            }
            for row in rows
        ]

    def principal(self, name: str, signed_in_at: float | None = None) -> Principal | None:
        """The user as they stand now; None when unknown, disabled, or the session predates a change."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.name == name)).first()
            if row is None or row.disabled:
                return None
            if signed_in_at is not None and signed_in_at < row.sessions_valid_after:
                return None
            held = connection.execute(sa.select(grants).where(grants.c.user_name == name)).all()
        return Principal(name, bool(row.platform_admin), {g.project: Role[g.role] for g in held})

    def user_state(self, name: str) -> tuple[bool, bool] | None:
        """(known, disabled) for a proxy user: None when the database has no row for them."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users.c.disabled).where(users.c.name == name)).first()
        return None if row is None else (True, bool(row.disabled))

    def verify_password(self, name: str, password: str) -> bool:
        """Whether `password` is `name`'s, for an enabled user with a password; rehashes old parameters."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.name == name)).first()
        if row is None or row.disabled or not row.password_hash:
            # Hash anyway, so an unknown name takes as long to refuse as a wrong password.
            self.hasher.hash(password)
            return False
        try:
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if self.hasher.check_needs_rehash(row.password_hash):
            with self.engine.begin() as connection:
                connection.execute(
                    users.update().where(users.c.name == name).values(password_hash=self.hasher.hash(password))
                )
        return True

    # Sign-in throttling -------------------------------------------------------------------------

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

    # Sessions -----------------------------------------------------------------------------------

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

    # The audit log ----------------------------------------------------------------------------

    def record(
        self,
        action: str,
        outcome: str,
        user: str | None = None,
        role: str | None = None,
        project: str | None = None,
        target: str | None = None,
        client: str | None = None,
        detail: str | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                audit.insert().values(
                    at=time.time(),
                    user_name=printable(user, 128),
                    role=printable(role, 32),
                    project=printable(project, 128),
                    action=printable(action, 64),
                    target=printable(target, 1000),
                    outcome=outcome,
                    client=printable(client, 64),
                    detail=printable(detail, 2000),
                )
            )

    def entries(
        self,
        user: str | None = None,
        project: str | None = None,
        projects: set[str] | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> Iterator[AuditEntry]:
        """The log, oldest first; `projects` limits it to those (a project admin's view)."""
        query = sa.select(audit).order_by(audit.c.id)
        if user:
            query = query.where(audit.c.user_name == user)
        if project:
            query = query.where(audit.c.project == project)
        if projects is not None:
            query = query.where(audit.c.project.in_(sorted(projects)))
        if since:
            query = query.where(audit.c.at >= since)
        if limit:
            query = sa.select(query.order_by(audit.c.id.desc()).limit(limit).subquery()).order_by("id")
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                yield AuditEntry(
                    row.at,
                    row.user_name,
                    row.role,
                    row.project,
                    row.action,
                    row.target,
                    row.outcome,
                    row.client,
                    row.detail,
                )
