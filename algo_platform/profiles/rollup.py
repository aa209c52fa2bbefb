"""The project's rollup: every stored `data_profile` partition in one Parquet file, updated in place.

A refresh lists the partition files once (name, size, modification time), re-reads only those whose
stamp differs from the one the rollup recorded (a new partition, or an earlier one ingested again),
drops the rows of partitions that are gone, and writes the rollup with its stamps in the file's own
metadata: one atomic rename, so a reader sees the old rollup or the new one. Two refreshes at once
both write a correct rollup of what they listed; the one that loses the race left out only what
the next refresh finds changed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core.atomic import write_streamed_atomically
from algo_platform.core.layout import ProjectLayout
from algo_platform.profiles.compute import PROFILE_SCHEMA

PROFILE_ASSET = "data_profile"
_STAMPS = b"algo_platform.profile_stamps"
ROLLUP_SCHEMA = pa.schema([("partition", pa.string()), *PROFILE_SCHEMA])


def _stamp(info: dict) -> str:
    """What changes when a partition is written again: its size and time (or an object store's ETag)."""
    moment = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("ETag")
    return f"{info.get('size')}:{moment}"


@dataclass(frozen=True)
class Rollup:
    table: pl.DataFrame  # ROLLUP_SCHEMA
    stamps: dict[str, str]  # partition key -> stamp of the file it was read from

    @property
    def partitions(self) -> list[str]:
        return sorted(self.stamps)


class ProfileStore:
    """A project's stored profiles and their rollup."""

    def __init__(self, layout: ProjectLayout):
        self.folder: UPath = layout.stored_tables(PROFILE_ASSET)
        self.rollup_path: UPath = layout.profile_rollup

    def stored(self) -> dict[str, str]:
        """{partition key: stamp} of every stored profile, from one listing."""
        if not self.folder.exists():
            return {}
        self.folder.fs.invalidate_cache(self.folder.path)
        found = {}
        for info in self.folder.fs.ls(self.folder.path, detail=True):
            name = str(info["name"]).rsplit("/", 1)[-1]
            if name.endswith(".parquet") and not name.startswith("."):
                found[name.removesuffix(".parquet")] = _stamp(info)
        return found

    def read(self) -> Rollup:
        """The rollup as last written (empty before the first refresh)."""
        if not self.rollup_path.exists():
            return Rollup(pl.from_arrow(ROLLUP_SCHEMA.empty_table()), {})
        with self.rollup_path.open("rb") as file:
            table = pq.read_table(file)
        stamps = json.loads((table.schema.metadata or {}).get(_STAMPS, b"{}"))
        return Rollup(pl.from_arrow(table.replace_schema_metadata(None)), stamps)

    def refresh(self, known: Rollup | None = None) -> Rollup:
        """The rollup, brought up to date with the stored profiles (rewritten only when they changed).

        `known` is a rollup this process read before (the page keeps one): when nothing changed
        since, it is the answer and the file is not read again."""
        stored = self.stored()
        if known is not None and known.stamps == stored:
            return known
        rollup = known if known is not None else self.read()
        changed = sorted(key for key, stamp in stored.items() if rollup.stamps.get(key) != stamp)
        gone = set(rollup.stamps) - set(stored)
        if not changed and not gone:
            return rollup
        kept = rollup.table.filter(~pl.col("partition").is_in([*changed, *gone]))
        # Partitions are small files: read side by side (pyarrow releases the GIL), as the IO manager reads a window.
        with ThreadPoolExecutor(max_workers=8) as pool:
            fresh = list(pool.map(self._partition, changed))
        table = pl.concat([kept, *fresh], how="vertical").sort("day", "section", maintain_order=True)
        stamps = {key: stored[key] for key in stored if key not in gone}
        self._write(table, stamps)
        return Rollup(table, stamps)

    def _partition(self, key: str) -> pl.DataFrame:
        with (self.folder / f"{key}.parquet").open("rb") as file:
            table = pq.read_table(file).cast(PROFILE_SCHEMA)
        return pl.from_arrow(table).select(pl.lit(key).alias("partition"), pl.all())

    def _write(self, table: pl.DataFrame, stamps: dict[str, str]) -> None:
        arrow = table.to_arrow().cast(ROLLUP_SCHEMA).replace_schema_metadata({_STAMPS: json.dumps(stamps).encode()})
        write_streamed_atomically(self.rollup_path, lambda file: pq.write_table(arrow, file, compression="zstd"))
