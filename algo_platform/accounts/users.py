"""Users, their passwords (argon2id hashes) and their grants per project."""

from __future__ import annotations

import re
import time

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from algo_platform.accounts.principal import NAME_PATTERN, AccountError, Principal, Role
from algo_platform.accounts.tables import grants, sessions, users


class Users:
    """Part of `Accounts`: needs `self.engine`."""

    engine: sa.Engine
    hasher = PasswordHasher()  # argon2id, the library's current parameters

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
