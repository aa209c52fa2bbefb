"""Landing a file for a project: its column map merged with the user's `--map`s, its storage, its
calendar and its extra columns, the same for `algo-platform upload`, `algo-platform import` and
the webserver's upload page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from algo_platform.core.project import Project
from algo_platform.core.settings import Settings
from algo_platform.ingest.canonical import parse_column_mapping
from algo_platform.ingest.importer import ImportResult, import_events
from algo_platform.ingest.upload import UploadResult, upload_event_file


def column_mapping(project: Project, overrides: Sequence[str] = ()) -> dict[str, str]:
    """The project's `data.column_map`, with `CANONICAL=SOURCE` overrides on top."""
    return {**project.data.column_map, **parse_column_mapping(list(overrides), project.data.extra_columns)}


def upload_for_project(
    project: Project,
    settings: Settings,
    path: str | Path,
    day: str,
    overrides: Sequence[str] = (),
    expected_sha256: str | None = None,
    dry_run: bool = False,
) -> UploadResult:
    """One day's file, checked and landed in the project's landing zone (raises UploadError, ValueError);
    with `expected_sha256`, only if its bytes are still those (a previewed upload)."""
    return upload_event_file(
        path,
        day,
        column_mapping(project, overrides),
        settings.layout.project(project.name).root,
        project.partitions_start.isoformat(),
        extra_columns=project.data.extra_columns,
        grain=project.data.partition,
        expected_sha256=expected_sha256,
        dry_run=dry_run,
    )


def import_for_project(
    project: Project,
    settings: Settings,
    source: str,
    overrides: Sequence[str] = (),
    memory_bytes: int = 512 << 20,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> ImportResult:
    """A history file split by event day into the project's landing zone (raises ImportRefused, ValueError)."""
    return import_events(
        source,
        settings.layout.project(project.name).root,
        column_mapping(project, overrides),
        project.data.extra_columns,
        project.partitions_start.isoformat(),
        project_file=project.calendar.project_file,
        memory_bytes=memory_bytes,
        progress=progress,
    )
