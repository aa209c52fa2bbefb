"""Files that readers never see half-written: written under a temp name, then renamed into place.

The temp name is hidden (a leading `.`, which every reader of the landing zone and of asset
folders skips) and unique to the writer, so two writers of one file never share a temp file. A
rename also replaces a link planted at the target instead of writing through it.

A table of part files (Spark's) cannot be renamed in one step on an object store: it is read as
its manifest names it, and the manifest is written last.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import BinaryIO

from upath import UPath

# Written last, in one PUT: readers see the previous table or the new one, whole.
PARTS_MANIFEST = "_parts.json"


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


def stored_parts(path: UPath) -> list[UPath]:
    """The Parquet files that make up the table at `path`, in row order: the file itself; the parts
    a folder's manifest names; or, in a folder Spark wrote on a file system, its part files by name."""
    # fsspec caches listings per process, and Spark reuses its Python workers: a table replaced
    # since the last look must not be read from the cached listing.
    path.fs.invalidate_cache(path.path)
    if not path.is_dir():
        return [path]
    manifest = path / PARTS_MANIFEST
    if manifest.exists():
        return [path / name for name in json.loads(manifest.fs.cat_file(manifest.path))["parts"]]
    return sorted(p for p in path.iterdir() if p.name.endswith(".parquet") and not p.name.startswith((".", "_")))
