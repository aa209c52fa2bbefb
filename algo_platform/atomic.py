"""Files that readers never see half-written: written under a temp name, then renamed into place.

The temp name is hidden (a leading `.`, which every reader of the landing zone and of asset
folders skips) and unique to the writer, so two writers of one file never share a temp file. A
rename also replaces a link planted at the target instead of writing through it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import BinaryIO

from upath import UPath


def write_streamed_atomically(target: UPath, write: Callable[[BinaryIO], object]) -> None:
    """`write(file)` into a temp file beside `target`, then rename it to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        with temp.open("wb") as file:
            write(file)
        temp.rename(target)
    finally:
        if temp.exists():
            temp.unlink()


def write_atomically(target: UPath, data: bytes) -> None:
    write_streamed_atomically(target, lambda file: file.write(data))
