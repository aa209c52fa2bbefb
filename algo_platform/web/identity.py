"""Who is asking: the settings of sign-in (local users or an identity-aware proxy), the address a
request comes from (a trusted proxy's X-Forwarded-For, else the peer), and the principal behind a
request, with its roles read from the database on every request."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from starlette.types import Scope

from algo_platform.accounts.principal import Principal, Role
from algo_platform.accounts.store import Accounts
from algo_platform.core import environment
from algo_platform.core.project import projects_dir

SESSION_SECONDS = 12 * 3600


GROUP_PREFIX = "algo-platform:"  # proxy groups: algo-platform:<project>:<role>, algo-platform:platform-admins


class AuthConfigError(RuntimeError):
    """The server cannot start safely as configured; the message says what to set."""


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "local"  # "local": the platform's users; "proxy": an identity-aware proxy in front
    session_secret: str = ""
    secure_cookies: bool = False
    trusted_proxies: tuple = ()
    user_header: str = "x-forwarded-user"
    groups_header: str = "x-forwarded-groups"
    projects_dir: Path = field(default_factory=projects_dir)

    @classmethod
    def from_environment(cls) -> AuthSettings:
        mode = environment.read("ALGO_PLATFORM_AUTH", "local")
        if mode not in ("local", "proxy"):
            raise AuthConfigError(f"ALGO_PLATFORM_AUTH={mode!r}: use local (the platform's users) or proxy")
        secret = environment.read("ALGO_PLATFORM_SESSION_SECRET", "")
        if len(secret) < 32:
            raise AuthConfigError(
                "ALGO_PLATFORM_SESSION_SECRET is "
                + ("not set" if not secret else "shorter than 32 characters")
                + ": the UI will not start without a secret to sign sessions with. Make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` and keep it in your secret store"
            )
        try:
            proxies = tuple(
                ipaddress.ip_network(item, strict=False)
                for item in environment.read_list("ALGO_PLATFORM_TRUSTED_PROXIES")
            )
        except ValueError as error:
            raise AuthConfigError(f"ALGO_PLATFORM_TRUSTED_PROXIES: {error}") from None
        if mode == "proxy" and not proxies:
            raise AuthConfigError(
                "ALGO_PLATFORM_AUTH=proxy needs ALGO_PLATFORM_TRUSTED_PROXIES (the proxy's addresses)"
            )
        return cls(
            mode=mode,
            session_secret=secret,
            secure_cookies=environment.read("ALGO_PLATFORM_SECURE_COOKIES") == "1",
            trusted_proxies=proxies,
            user_header=environment.read("ALGO_PLATFORM_PROXY_USER_HEADER", "X-Forwarded-User").lower(),
            groups_header=environment.read("ALGO_PLATFORM_PROXY_GROUPS_HEADER", "X-Forwarded-Groups").lower(),
        )


def request_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def peer_address(scope: Scope) -> str | None:
    """The transport peer: uvicorn is told to believe no X-Forwarded-For (server.py), so this is
    the address that opened the connection."""
    client = scope.get("client")
    return client[0] if client else None


class Identities:
    """The principal behind a request, and the address it comes from."""

    def __init__(self, accounts: Accounts, settings: AuthSettings):
        self.accounts, self.settings = accounts, settings

    def client(self, scope: Scope) -> str | None:
        """Who sent the request, for the audit log and the per-address sign-in lock: the peer, or,
        when the peer is a configured proxy, the address that proxy appended to X-Forwarded-For."""
        peer = peer_address(scope)
        if self.trusted_proxy(peer):
            forwarded = request_headers(scope).get("x-forwarded-for", "").split(",")[-1].strip()
            with contextlib.suppress(ValueError):
                return str(ipaddress.ip_address(forwarded))
        return peer

    def trusted_proxy(self, client: str | None) -> bool:
        if client is None:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.settings.trusted_proxies)

    def _from_proxy(self, scope: Scope) -> Principal | str | None:
        headers, client = request_headers(scope), peer_address(scope)
        name = headers.get(self.settings.user_header, "").strip()
        if not name:
            return None
        if not self.trusted_proxy(client):
            return f"identity headers from {client}, which is not a trusted proxy (ALGO_PLATFORM_TRUSTED_PROXIES)"
        state = self.accounts.user_state(name)
        if state and state[1]:
            return f"user {name} is disabled"
        stored = self.accounts.principal(name) if state else None
        roles = dict(stored.roles) if stored else {}
        admin = bool(stored and stored.platform_admin)
        for group in headers.get(self.settings.groups_header, "").split(","):
            group = group.strip()
            if group == f"{GROUP_PREFIX}platform-admins":
                admin = True
            elif group.startswith(GROUP_PREFIX) and group.count(":") == 2:
                _, project, role = group.split(":")
                if role in Role.__members__:
                    roles[project] = max(roles.get(project, Role.viewer), Role[role])
        return Principal(name, admin, roles)

    def identify(self, scope: Scope) -> Principal | str | None:
        """The principal; a refusal message (str); or None when nobody is signed in."""
        if self.settings.mode == "proxy":
            return self._from_proxy(scope)
        session = scope.get("session") or {}
        name, signed_in_at, session_id = session.get("user"), session.get("at"), session.get("sid")
        if not isinstance(name, str) or not isinstance(signed_in_at, int | float) or not isinstance(session_id, str):
            return None
        if self.accounts.session_user(session_id, SESSION_SECONDS) != name:
            return None  # signed out (or the session expired): the cookie alone is not enough
        return self.accounts.principal(name, signed_in_at)
