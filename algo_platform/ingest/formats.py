"""Event files as bytes become Arrow tables: Parquet, CSV (its delimiter guessed from the header),
JSON Lines, compressed text (gzip, bz2, zstd) within bounds a bomb cannot pass. A file that cannot
be read is a `BadEventFile`, with the reason and a detail that names the defect, never its content.

JSONL policy: a malformed line makes the whole file unusable (file-level quarantine). A
half-read file is worse than a quarantined one, because its good lines would look complete.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")


# Text formats may arrive compressed: `events.csv.gz`, `events.jsonl.zst`.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


# Delimiters recognised in a CSV header, in order of preference on a tie.
CSV_DELIMITERS = (",", ";", "\t", "|")


class BadEventFile(Exception):
    """A landing-zone file that cannot be loaded; `reason` is a stable code, `detail` says why."""

    def __init__(self, file: str, reason: str, detail: str):
        super().__init__(f"{file}: {detail}")
        self.file = file
        self.reason = reason
        self.detail = detail


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DecompressionLimits:
    """How far a compressed upload may expand: a few hundred KiB of gzip can inflate to gigabytes."""

    max_bytes: int = 1 << 30
    max_ratio: float = 100.0

    @classmethod
    def from_environment(cls) -> DecompressionLimits:
        """ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB and ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO."""
        mb = os.environ.get("ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB")
        ratio = os.environ.get("ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO")
        return cls(int(mb) << 20 if mb else cls.max_bytes, float(ratio) if ratio else cls.max_ratio)

    def bound(self, compressed_bytes: int) -> int:
        return int(min(self.max_bytes, max(compressed_bytes, 1) * self.max_ratio))


def _decompressed(name: str, data: bytes, limits: DecompressionLimits | None = None) -> tuple[str, bytes]:
    """`events.csv.gz` -> (`events.csv`, its bytes); other names unchanged. With `limits`, a file
    that expands beyond them is refused as soon as it does, before it fills memory."""
    stem, dot, ext = name.rpartition(".")
    codec = COMPRESSIONS.get(f".{ext.lower()}") if dot else None
    if codec is None:
        return name, data
    if not data:
        raise BadEventFile(name, "empty_file", "file is empty (0 bytes); re-export it from the source")
    chunks, size = [], 0
    try:
        with pa.CompressedInputStream(pa.BufferReader(data), codec) as stream:
            if limits is None:
                return stem, stream.read()
            bound = limits.bound(len(data))
            while chunk := stream.read(8 << 20):
                size += len(chunk)
                if size > bound:
                    raise BadEventFile(
                        name,
                        "decompression_bomb",
                        f"expands beyond {bound / 2**20:,.0f} MiB from {len(data) / 2**20:,.2f} MiB compressed "
                        f"(the limits are {limits.max_bytes >> 20} MiB and {limits.max_ratio:g}x); upload it "
                        "with `algo-platform import`, which streams, or raise ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB "
                        "/ ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO if the file is genuine",
                    )
                chunks.append(chunk)
    except (OSError, pa.ArrowInvalid):
        raise BadEventFile(
            name, "corrupt_compressed", f"not a valid {codec} stream (truncated?); compress the file again"
        ) from None
    return stem, b"".join(chunks)


def csv_delimiter(data: bytes) -> str:
    """The delimiter of a CSV file, from its header line (European exports use ';')."""
    header = data.split(b"\n", 1)[0]
    counts = {d: header.count(d.encode()) for d in CSV_DELIMITERS}
    best = max(CSV_DELIMITERS, key=lambda d: counts[d])  # max keeps the first on a tie
    return best if counts[best] else ","


def _safe_arrow_message(message: str) -> str:
    """Arrow's parse error without the file content it quotes (a CSV error repeats the whole row)."""
    first = message.splitlines()[0] if message else ""
    first = re.sub(r"(Expected \d+ columns, got \d+):.*", r"\1", first)
    return first[:200]


def parse_bytes(name: str, data: bytes, limits: DecompressionLimits | None = None) -> pa.Table:
    name, data = _decompressed(name, data, limits)
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in SUPPORTED_SUFFIXES:
        raise BadEventFile(
            name,
            "unsupported_format",
            f"unsupported file type {suffix or '(no extension)'!r}; "
            f"convert it to one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    if not data:
        raise BadEventFile(name, "empty_file", "file is empty (0 bytes); re-export it from the source")
    try:
        if suffix == ".parquet":
            return pq.read_table(pa.BufferReader(data))
        if suffix == ".csv":
            parse = pacsv.ParseOptions(delimiter=csv_delimiter(data))
            return pacsv.read_csv(io.BytesIO(data), parse_options=parse)
        return pajson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        message = _safe_arrow_message(str(exc))
        if suffix == ".parquet":
            reason, fix = "corrupt_parquet", "the file is truncated or not Parquet; upload it again"
        elif "UTF8" in message or "utf-8" in message.lower():
            reason, fix = "undecodable_bytes", "re-export the file as UTF-8"
        elif "Empty CSV" in message:
            raise BadEventFile(name, "empty_file", "file has no header and no rows") from exc
        elif suffix in (".jsonl", ".json"):
            reason, fix = "malformed_jsonl", "every line must be one JSON object; fix or drop the bad lines"
        else:
            reason, fix = "unreadable", "check the file's format"
        raise BadEventFile(name, reason, f"cannot be read ({message}); {fix}") from exc
