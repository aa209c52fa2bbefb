"""A web upload received as it streams in: who may upload is decided before a byte of the file is kept.

The form's fields come before its file (the upload page and `algo-platform upload --server` send
them so), so by the time the file part begins the CSRF token and the project are known and the
caller's `authorize` has said yes or no. A refusal stops the reading there. The body is counted
while it arrives, so a chunked request without a length is cut off at the limit too. The parsing is
python-multipart's streaming parser (the one Starlette's own form parsing uses), driven chunk by
chunk instead of spooling the whole form first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from algo_platform.ingest.quarantine import MAX_NAME_BYTES

MAX_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024


class UploadRefused(Exception):
    """The upload is refused with this HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class ReceivedUpload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    size: int = 0

    def first(self, name: str) -> str:
        return (self.fields.get(name) or [""])[0]


def upload_file_name(raw: str) -> str:
    """The name a browser sent, as a landing-zone file name; UploadRefused names what is wrong."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    shown = repr(name[:60]) + ("..." if len(name) > 60 else "")
    if not name or name in (".", ".."):
        raise UploadRefused(400, f"{shown} is not a file name; choose a file")
    if any(not c.isprintable() for c in name):
        raise UploadRefused(400, f"the file name {shown} holds control characters; rename the file")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise UploadRefused(
            400, f"the file name {shown} is {len(name.encode())} bytes; rename it to at most {MAX_NAME_BYTES}"
        )
    return name


class _Parts:
    """python-multipart's callbacks: fields into memory (bounded), the one file to `folder`."""

    def __init__(self, folder: Path, authorize: Callable[[Mapping[str, list[str]]], None], result: ReceivedUpload):
        self.folder, self.authorize, self.result = folder, authorize, result
        self.headers: dict[bytes, bytes] = {}
        self.header_field = self.header_value = b""
        self.name: str | None = None
        self.value = bytearray()
        self.file: BinaryIO | None = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self._add("header_field", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("header_value", data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def _add(self, attribute: str, data: bytes) -> None:
        setattr(self, attribute, getattr(self, attribute) + data)

    def part_begin(self) -> None:
        self.headers, self.name, self.value = {}, None, bytearray()

    def header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = self.header_value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if sum(map(len, self.result.fields.values())) >= MAX_FIELDS:
                raise UploadRefused(400, f"the form has more than {MAX_FIELDS} fields")
            return
        if self.result.filename is not None:
            raise UploadRefused(400, "send one file per upload")
        self.authorize(self.result.fields)  # raises UploadRefused: nothing of the file is kept
        try:
            raw = options[b"filename"].decode("utf-8")
        except UnicodeDecodeError:
            raise UploadRefused(400, "the file name is not UTF-8; rename the file") from None
        self.result.filename = upload_file_name(raw)
        self.result.path = self.folder / self.result.filename
        self.file = self.result.path.open("wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.file.write(data[start:end])
            self.result.size += end - start
            return
        self.value += data[start:end]
        if len(self.value) > MAX_FIELD_BYTES:
            raise UploadRefused(400, f"form field {self.name!r} is over {MAX_FIELD_BYTES // 1024} KiB")

    def part_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        elif self.name is not None:
            self.result.fields.setdefault(self.name, []).append(self.value.decode("utf-8", "replace"))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


async def receive_upload(
    request: Request,
    folder: Path,
    authorize: Callable[[Mapping[str, list[str]]], None],
    max_body_bytes: int,
) -> ReceivedUpload:
    """The form's fields and its file, spooled under `folder` only once `authorize(fields)` passed.

    `authorize` raises UploadRefused; it is called when the file part begins, or at the end of a
    form without a file."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadRefused(415, "send the upload as multipart/form-data (the upload page and the CLI do)")
    too_large = f"the upload is over {max_body_bytes / 2**30:g} GiB; use `algo-platform import` for files this size"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_body_bytes:
        raise UploadRefused(413, too_large)
    result = ReceivedUpload()
    parts = _Parts(folder, authorize, result)
    parser = MultipartParser(options[b"boundary"], parts.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body_bytes:  # a chunked body has no length to refuse up front
                raise UploadRefused(413, too_large)
            parser.write(chunk)
        parser.finalize()
    finally:
        parts.close()
    if result.filename is None:
        authorize(result.fields)
    return result
