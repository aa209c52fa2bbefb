"""The audit log: append-only (a trigger refuses UPDATE and DELETE), every field made printable."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from algo_platform.accounts.tables import audit


def printable(text: str | None, limit: int) -> str | None:
    """`text` as the audit log stores it: control characters (a newline would forge a line in
    `algo-platform audit`) written as escapes, and at most `limit` characters, marked when cut."""
    if text is None:
        return None
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


class AuditLog:
    """Part of `Accounts`: needs `self.engine`."""

    engine: sa.Engine

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
