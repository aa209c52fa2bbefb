"""ASGI middleware around Dagster's web app: no state change from another site.

The open-source Dagster UI accepts GraphQL mutations over GET and from any Origin, so any web page
open in an operator's browser could launch runs on a UI at 127.0.0.1. This refuses:

- a request whose Host is not one this server answers to (DNS rebinding: a hostile name resolving
  to 127.0.0.1 would otherwise be same-origin with the UI); Starlette's TrustedHostMiddleware;
- any POST, PUT, PATCH or DELETE, and any websocket, that a browser marks as coming from another
  origin (`Origin` not this server, or `Sec-Fetch-Site: cross-site`);

GraphQL mutations over GET (links and <img> tags make GET requests) and GraphQL POSTs that are not
JSON (an HTML form can post text/plain across sites without a preflight) are refused by the
sign-in layer, which audits them (`signin._transport_refusal`).

Requests without browser headers (curl, Python clients, the CLI) are not cross-site requests and
pass; sign-in and roles are a separate layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from algo_platform.web.identity import request_headers

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class CrossSiteWriteGuard:
    """Refuses cross-origin state changes and GraphQL mutations over GET (see the module docstring)."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()):
        self.app = app
        self.allowed_origins = {origin.rstrip("/") for origin in allowed_origins}

    def _cross_site(self, headers: dict[str, str]) -> bool:
        if headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = headers.get("origin")
        if origin is None:
            return False  # not sent by a browser for this request, or a same-origin navigation
        if origin.rstrip("/") in self.allowed_origins:
            return False
        # Host and port decide; the scheme may differ behind a TLS-terminating proxy.
        return origin == "null" or urlsplit(origin).netloc != headers.get("host", "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        if scope["type"] == "websocket":
            if self._cross_site(headers):
                await send({"type": "websocket.close", "code": 1008, "reason": "cross-origin websocket refused"})
                return
            await self.app(scope, receive, send)
            return

        method, path = scope["method"], scope["path"]
        if method not in SAFE_METHODS and self._cross_site(headers):
            message = f"{method} {path} from another origin ({headers.get('origin', 'cross-site')}) refused"
            await JSONResponse({"error": message}, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def guarded(app: ASGIApp, allowed_hosts: Iterable[str], allowed_origins: Iterable[str] = ()) -> ASGIApp:
    """`app` behind the Host check and the cross-site write guard."""
    return TrustedHostMiddleware(CrossSiteWriteGuard(app, allowed_origins), allowed_hosts=list(allowed_hosts))
