"""The browser's rules for the platform's own pages (`/platform/...`, `/auth/...`).

Their markup escapes every value it shows, and their scripts are files from `/platform/static`
(charts read their figures from JSON elements, never from inline code). The Content-Security-Policy
makes that the browser's rule too: no inline or foreign script runs and no `javascript:` URL
is followed, even where a value slipped past the escaping; forms post only to this server and no
other site frames the pages. Dagster's own pages send their own policy.
"""

from __future__ import annotations

from starlette.types import Message, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
NAMES = {name for name, _ in HEADERS}


def with_content_policy(send: Send) -> Send:
    """`send` for one response, with the platform pages' security headers added to its start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in NAMES]
            message = {**message, "headers": [*kept, *HEADERS]}
        await send(message)

    return sending
