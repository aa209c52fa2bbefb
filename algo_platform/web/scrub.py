"""What Dagster's answers to a member (a user who is not a platform admin) may not carry: Python
stack traces and the server's file paths.

Dagster puts a failing resolver's traceback in `extensions.errorInfo` of a GraphQL error and in the
`stack` of a PythonError result; its messages can name files under the server's folders. A
platform admin reads them whole (they run the server); for a member they are emptied, over HTTP
and on the websocket alike. Answers without a traceback pass as they are, after a byte search.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import Message, Send

# The bytes that may mark a traceback or a path in a JSON answer; most answers have none.
MARKERS = (b'"stack"', b'"errorInfo"', b'"errorChain"', b"Traceback", b'Error"')
# An absolute path of two parts or more (`/srv/storage/projects`), as an error message quotes it.
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)+[\w.@+-]*")


def _scrub_message(message: Any) -> Any:
    return SERVER_PATH.sub("<server path>", message) if isinstance(message, str) else message


def scrubbed(value: Any, in_error: bool = False) -> Any:
    """`value` (a parsed answer) without stack traces, and without server paths in error messages."""
    if isinstance(value, list):
        return [scrubbed(item, in_error) for item in value]
    if not isinstance(value, dict):
        return value
    typename = value.get("__typename")
    is_error = in_error or "stack" in value or (isinstance(typename, str) and typename.endswith("Error"))
    out = {}
    for key, item in value.items():
        if key in ("stack", "errorChain"):
            out[key] = []
        elif key == "extensions" and isinstance(item, dict):
            out[key] = {k: v for k, v in item.items() if k != "errorInfo"}
        elif key == "message" and is_error:
            out[key] = _scrub_message(item)
        elif key == "errors" and isinstance(item, list):
            out[key] = [scrubbed(error, in_error=True) for error in item]
        else:
            out[key] = scrubbed(item, in_error and key != "data")
    return out


def scrub_json(body: bytes) -> bytes:
    if not any(marker in body for marker in MARKERS):
        return body
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body
    clean = scrubbed(answer)
    return body if clean == answer else json.dumps(clean).encode()


def scrubbing_http(send: Send) -> Send:
    """`send` for a GraphQL answer over HTTP: the JSON body held until complete, then scrubbed."""
    state: dict[str, Any] = {"body": bytearray()}

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["start"] = message
            return
        if message["type"] != "http.response.body" or "start" not in state:
            await send(message)
            return
        state["body"] += message.get("body", b"")
        if message.get("more_body"):
            return
        body = scrub_json(bytes(state["body"]))
        start = state.pop("start")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return sending


def scrubbing_websocket(send: Send) -> Send:
    """`send` for the GraphQL websocket: each text frame scrubbed."""

    async def sending(message: Message) -> None:
        if message["type"] == "websocket.send" and message.get("text"):
            text = scrub_json(message["text"].encode()).decode()
            message = {**message, "text": text}
        await send(message)

    return sending
