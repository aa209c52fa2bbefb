"""Event files become Arrow tables, whole (an upload, a landed file) or in batches (a history
import of any size): Parquet, CSV (its delimiter guessed from the header),
JSON Lines, compressed text (gzip, bz2, zstd) within bounds a bomb cannot pass. A file that cannot
be read is a `BadEventFile`, with the reason and a detail that names the defect, never its content.

JSONL policy: a malformed line makes the whole file unusable (file-level quarantine). A
half-read file is worse than a quarantined one, because its good lines would look complete.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.core import environment
from algo_platform.ingest.folders import is_local

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
        mb = environment.read("ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB")
        ratio = environment.read("ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO")
        return cls(int(mb) << 20 if mb else cls.max_bytes, float(ratio) if ratio else cls.max_ratio)

    def bound(self, compressed_bytes: int) -> int:
        return int(min(self.max_bytes, max(compressed_bytes, 1) * self.max_ratio))


def _size(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB" if count >= 2**20 else f"{count / 2**10:,.1f} KiB"


def bomb(name: str, what: str, limits: DecompressionLimits) -> BadEventFile:
    """The refusal of an upload that would expand beyond `limits` (a compressed text or a Parquet file)."""
    return BadEventFile(
        name,
        "decompression_bomb",
        f"{what} (the limits are {limits.max_bytes >> 20} MiB and {limits.max_ratio:g}x its size); upload it with "
        "`algo-platform import`, which streams, or raise ALGO_PLATFORM_UPLOAD_MAX_DECOMPRESSED_MB / "
        "ALGO_PLATFORM_UPLOAD_MAX_COMPRESSION_RATIO if the file is genuine",
    )


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
                    raise bomb(name, f"expands beyond {_size(bound)} from {_size(len(data))} compressed", limits)
                chunks.append(chunk)
    except (OSError, pa.ArrowInvalid):
        raise BadEventFile(
            name, "corrupt_compressed", f"not a valid {codec} stream (truncated?); compress the file again"
        ) from None
    return stem, b"".join(chunks)


# Rows of a Parquet upload read at a time: what one batch may hold beyond the limits.
PARQUET_BATCH_ROWS = 1024
# The least memory a row of a column takes once read (an int64, a timestamp, a dictionary index
# and its offsets): encodings can store millions of identical rows in a few bytes.
MIN_BYTES_PER_VALUE = 8


def _parquet_within(name: str, data: bytes, limits: DecompressionLimits) -> pa.Table:
    """A Parquet upload read within `limits` (a Parquet file is compressed like a `.gz`, so the same
    limits apply): refused from its footer alone when its values (at least MIN_BYTES_PER_VALUE each,
    a list's every element counted) or its pages' uncompressed sizes pass them; then read a batch at
    a time and refused as soon as what it holds passes them (a footer cannot say how long a
    dictionary's strings are once every row has its copy)."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
    except pa.ArrowInvalid as error:
        raise BadEventFile(
            name,
            "corrupt_parquet",
            f"cannot be read ({_safe_arrow_message(str(error))}); the file is truncated or "
            "not Parquet; upload it again",
        ) from None
    metadata = parquet.metadata
    chunks = [
        metadata.row_group(g).column(c) for g in range(metadata.num_row_groups) for c in range(metadata.num_columns)
    ]
    uncompressed = sum(chunk.total_uncompressed_size for chunk in chunks)
    # Values, not rows: a list column holds many values per row.
    values = sum(chunk.num_values for chunk in chunks)
    expanded = max(uncompressed, values * MIN_BYTES_PER_VALUE, metadata.num_rows * MIN_BYTES_PER_VALUE)
    bound = limits.bound(len(data))
    if expanded > bound:
        declared = (
            f"its footer declares {metadata.num_rows:,} rows of {metadata.num_columns} columns ({values:,} values)"
        )
        raise bomb(name, f"{declared}, at least {_size(expanded)} once read, from {_size(len(data))}", limits)
    held, batches = 0, []
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        held += batch.nbytes
        if held > bound:
            rows = f"after {sum(len(b) for b in batches):,} rows"
            raise bomb(name, f"expands beyond {_size(bound)} once read ({rows}) from {_size(len(data))}", limits)
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=parquet.schema_arrow)


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
            if limits is not None:
                return _parquet_within(name, data, limits)
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


# The streaming reader of `algo-platform import`: same formats, same delimiter rule, bounded memory.
# Bytes of the source per batch; a batch and its canonical copy are the first pass's memory.
BATCH_BYTES = 16 << 20
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


READ_BLOCK_BYTES = 2 << 20  # the largest CSV row or JSON line an import reads


# A compressed history may grow to this many times its size as Arrow columns (a little more than its
# text): far above real exports, far below a decompression bomb. ALGO_PLATFORM_IMPORT_MAX_COMPRESSION_RATIO.
IMPORT_MAX_COMPRESSION_RATIO = 200.0


def file_format(name: str) -> tuple[str, str | None]:
    """(format, compression) from a file name such as `ratings.csv.gz`."""
    stem, codec = name, None
    for suffix, compression in COMPRESSIONS.items():
        if name.lower().endswith(suffix):
            stem, codec = name[: -len(suffix)], compression
    for suffix, kind in FORMATS.items():
        if stem.lower().endswith(suffix):
            if kind == "parquet" and codec is not None:
                break
            return kind, codec
    raise BadEventFile(
        name,
        "unsupported_format",
        "cannot tell the format from the name; use .parquet, .csv or .jsonl (optionally .gz, .bz2 or .zst)",
    )


def text_stream(path: UPath, codec: str | None) -> pa.NativeFile:
    # A local file is read by Arrow itself: through a Python file object, the reader's read-ahead
    # blocks are Python bytes outside Arrow's pool, and memory then grows with the file.
    source = path.path if is_local(path) else path.open("rb")
    return pa.input_stream(source, compression=codec)


def csv_header(path: UPath, codec: str | None) -> tuple[str, list[str]]:
    with text_stream(path, codec) as stream:
        header = stream.read(1 << 20).split(b"\n", 1)[0].rstrip(b"\r")
    if not header.strip():
        raise BadEventFile(path.name, "empty_file", "the first line is empty; a CSV file starts with its header")
    delimiter = csv_delimiter(header)  # as upload reads it
    names = header.decode("utf-8", errors="replace").split(delimiter)
    return delimiter, [name.strip().strip('"') for name in names]


def read_batches(path: UPath, batch_bytes: int = BATCH_BYTES) -> Iterator[pa.Table]:
    """The file in batches of about `batch_bytes`, with its own column names.

    CSV columns are read as text and typed by the mapping onto canonical columns, as one batch's
    guess of a type could be wrong for the next (a column empty for a million rows, then text)."""
    kind, codec = file_format(path.name)
    if kind == "parquet":
        with path.open("rb") as file:
            parquet = pq.ParquetFile(file)
            rows = max(1, batch_bytes // max(1, parquet.metadata.serialized_size // max(1, parquet.metadata.num_rows)))
            for batch in parquet.iter_batches(batch_size=min(rows, 1_000_000)):
                yield pa.Table.from_batches([batch])
        return
    # Arrow's readers read up to 32 blocks ahead in the background: small blocks keep that bounded
    # (a block of the batch's size would let the read-ahead hold 32 batches), and the blocks are
    # gathered into batches of about `batch_bytes` below.
    block_bytes = min(batch_bytes, READ_BLOCK_BYTES)
    if kind == "csv":
        delimiter, names = csv_header(path, codec)
        reader = pacsv.open_csv(
            text_stream(path, codec),
            read_options=pacsv.ReadOptions(block_size=block_bytes),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
            ),
        )
    else:
        reader = pajson.open_json(text_stream(path, codec), read_options=pajson.ReadOptions(block_size=block_bytes))
    ratio = float(environment.read("ALGO_PLATFORM_IMPORT_MAX_COMPRESSION_RATIO") or IMPORT_MAX_COMPRESSION_RATIO)
    bound = path.fs.size(path.path) * ratio if codec else math.inf
    read_bytes = 0
    with reader:
        gathered: list[pa.RecordBatch] = []
        gathered_bytes = 0
        for batch in reader:
            read_bytes += batch.nbytes
            if read_bytes > bound:
                raise BadEventFile(
                    path.name,
                    "decompression_bomb",
                    f"expands to more than {ratio:g} times its compressed size (a decompression "
                    "bomb, or data far more repetitive than an event log); import it uncompressed, or raise "
                    "ALGO_PLATFORM_IMPORT_MAX_COMPRESSION_RATIO if it is genuine",
                )
            gathered.append(batch)
            gathered_bytes += batch.nbytes
            if gathered_bytes >= batch_bytes:
                yield pa.Table.from_batches(gathered)
                gathered, gathered_bytes = [], 0
        if gathered:
            yield pa.Table.from_batches(gathered)
