"""What the web server writes to the audit log: the action, its outcome, who (with their role) and
from where (the client as identity.py resolves it)."""

from __future__ import annotations

from starlette.types import Scope

from algo_platform.accounts.principal import Principal
from algo_platform.accounts.store import Accounts
from algo_platform.web.identity import Identities


class AuditTrail:
    def __init__(self, accounts: Accounts, identities: Identities):
        self.accounts, self.identities = accounts, identities

    def record(self, action: str, outcome: str, scope: Scope, principal: Principal | None = None, **fields) -> None:
        """One entry; `role` defaults to the principal's role on `project` (or overall), `user` to
        the principal's name (given for refusals before anyone is known)."""
        role = fields.pop("role", None)
        if role is None and principal is not None:
            role = principal.describe_role(fields.get("project"))
        self.accounts.record(
            action, outcome, user=principal.name if principal else fields.pop("user", None), role=role,
            client=self.identities.client(scope), **fields,
        )  # fmt: skip


def roles_of(principal: Principal | None) -> str | None:
    """Every role a principal holds, as the sign-in entry records them."""
    if principal is None:
        return None
    if principal.platform_admin:
        return "platform-admin"
    return ",".join(f"{p}:{r.name}" for p, r in sorted(principal.roles.items())) or "none"
