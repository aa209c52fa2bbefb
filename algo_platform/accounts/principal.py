"""Who a request acts for: a user's name, whether they run the platform, their role per project."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}"


class Role(IntEnum):
    """A user's role on one project; each includes the ones below it."""

    viewer = 1
    launcher = 2
    editor = 3
    admin = 4


class AccountError(ValueError):
    """A refused change to users or grants; the message names the user and the fix."""


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
