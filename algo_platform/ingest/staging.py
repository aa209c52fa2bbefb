"""The staging area: an uploaded file waits here, outside the landing zone, while its uploader looks
at the preview. Each user has a folder of their own (named by a hash of the user name, so no name
reaches a path); each staged file has a random token and a record of what was previewed: the
project, the day, the mapping and the SHA-256 of the bytes. Confirming lands exactly those bytes
or nothing; cancelling removes them; a staged file older than a day goes at the user's next preview.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STAGED_FOR_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
_RECORD = "staged.json"  # the platform's record, beside the folder that holds the uploaded file
_UPLOAD = "file"  # the uploaded file's own folder: no upload name can reach the record's name


class NotStaged(Exception):
    """No such staged file for this user (cancelled, confirmed, expired, or never staged)."""


@dataclass(frozen=True)
class Staged:
    token: str
    project: str
    day: str
    mapping: list[str]
    name: str
    sha256: str
    size: int
    at: float

    def path_in(self, folder: Path) -> Path:
        return folder / _UPLOAD / self.name


class Staging:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _folder(self, user: str) -> Path:
        return self.root / hashlib.sha256(user.encode()).hexdigest()[:24]

    def _staged_folder(self, user: str, token: str) -> Path:
        if not _TOKEN.fullmatch(token or ""):
            raise NotStaged("not a staging token")
        return self._folder(user) / token

    def stage(self, user: str, project: str, day: str, mapping: list[str], received: Path, name: str) -> Staged:
        """Move the received file into the user's staging folder (copy when another file system)."""
        self.expire(user)
        token = secrets.token_urlsafe(24)
        folder = self._staged_folder(user, token)
        (folder / _UPLOAD).mkdir(parents=True, mode=0o700)
        target = folder / _UPLOAD / name
        shutil.move(str(received), target)
        with target.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        staged = Staged(token, project, day, mapping, name, digest, target.stat().st_size, time.time())
        (folder / _RECORD).write_text(json.dumps(asdict(staged)))
        return staged

    def load(self, user: str, token: str) -> tuple[Staged, Path]:
        """The staged record and the folder holding its file; NotStaged when there is none."""
        folder = self._staged_folder(user, token)
        record = folder / _RECORD
        if not record.is_file():
            raise NotStaged("nothing staged under this token: it was confirmed, cancelled or expired")
        staged = Staged(**json.loads(record.read_text()))
        return staged, folder

    def discard(self, user: str, token: str) -> None:
        shutil.rmtree(self._staged_folder(user, token), ignore_errors=True)

    def expire(self, user: str, now: float | None = None) -> None:
        folder = self._folder(user)
        if not folder.is_dir():
            return
        now = now or time.time()
        for staged in folder.iterdir():
            record = staged / _RECORD
            try:
                at = json.loads(record.read_text())["at"]
            except (OSError, ValueError, KeyError):
                at = staged.stat().st_mtime
            if now - at > STAGED_FOR_SECONDS:
                shutil.rmtree(staged, ignore_errors=True)
