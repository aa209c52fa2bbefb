"""Folders a writer may write into: never through a symbolic link, which could lead out of the
storage root; local folders and object stores told apart."""

from __future__ import annotations

import os

from upath import UPath

from algo_platform.core.layout import ProjectLayout


class LinkedLandingFolder(ValueError):
    """A folder a writer would write into is a symbolic link."""


def refuse_linked_folders(storage_root: str, folder: UPath) -> UPath:
    """`folder`, for a writer; refused when it or a folder between it and the storage root is a
    symbolic link: a write through it would land outside the storage root's zones."""
    if is_local(folder):
        root, current = os.path.abspath(UPath(storage_root).path), os.path.abspath(folder.path)
        while current.startswith(root + os.sep):
            if os.path.islink(current):
                raise LinkedLandingFolder(
                    f"{current} is a symbolic link; nothing is written through links, which could lead "
                    "out of the storage root: replace it with a real folder"
                )
            current = os.path.dirname(current)
    return folder


def writable_landing_dir(storage_root: str, day: str) -> UPath:
    """The day's landing folder, for a writer (never through a link: `refuse_linked_folders`)."""
    return refuse_linked_folders(storage_root, ProjectLayout(storage_root).landing_day(day))


def is_local(folder: UPath) -> bool:
    """A path on this machine's file system (where links exist), not an object store."""
    return folder.protocol in ("", "file", "local")


def is_object_store(storage_root: str) -> bool:
    return not is_local(UPath(storage_root))
