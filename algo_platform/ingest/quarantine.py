"""Where bad files go: a copy under quarantine/events/<day>/, with a `.reason.json` beside it saying
what was wrong and how to fix it; the landing zone keeps the original."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from upath import UPath

from algo_platform.core.atomic import write_atomically
from algo_platform.core.layout import ProjectLayout
from algo_platform.ingest.folders import refuse_linked_folders
from algo_platform.ingest.formats import BadEventFile

REASON_SUFFIX = ".reason.json"


# Room under the usual 255-byte file-name limit for the quarantine's `.reason.json` sidecar.
MAX_NAME_BYTES = 200


@dataclass(frozen=True)
class QuarantinedFile:
    file: str
    reason: str
    detail: str


def quarantine_name(name: str) -> str:
    """The name a file keeps in quarantine: its own, or a shortened one that leaves room for the
    `.reason.json` sidecar (a digest of the full name keeps shortened names distinct)."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name.encode()[:120].decode(errors='ignore')}...{digest}"


def quarantine_file(storage_root: str, day: str, source: UPath, data: bytes | None, error: BadEventFile) -> UPath:
    """Copy a bad file (never move it) to the quarantine folder, with a reason file beside it.

    `data=None` records the reason alone (a link is quarantined as a link: its target is not read).
    Both are written under a temp name and renamed, so a link planted in the quarantine folder is
    replaced, never written through; a linked quarantine folder is refused (`refuse_linked_folders`)."""
    folder = refuse_linked_folders(storage_root, ProjectLayout(storage_root).quarantine_day(day))
    name = quarantine_name(source.name)
    if data is not None:
        write_atomically(folder / name, data)
    reason = {
        "file": str(source),
        "reason": error.reason,
        "detail": error.detail,
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }
    write_atomically(folder / (name + REASON_SUFFIX), json.dumps(reason, indent=2).encode())
    return folder / name
