"""CSRF tokens of the platform's forms: one per session, sent back in a form field or the
X-CSRF-Token header, compared in constant time."""

from __future__ import annotations

import secrets

from starlette.requests import Request


def csrf_token(request: Request) -> str:
    """The session's token, made on first use; "" outside a session."""
    session = request.scope.get("session")
    if session is None:
        return ""
    session.setdefault("csrf", secrets.token_urlsafe(32))
    return session["csrf"]


def csrf_ok(request: Request, form) -> bool:
    """The request carries its session's token, in the X-CSRF-Token header or the form's `csrf` field."""
    given = request.headers.get("x-csrf-token") or (form.get("csrf") if form is not None else None)
    return csrf_matches(request, given)


def csrf_matches(request: Request, given) -> bool:
    expected = (request.scope.get("session") or {}).get("csrf")
    return bool(expected) and isinstance(given, str) and secrets.compare_digest(expected, given)
