"""Reading and writing files by local path or object-storage URI through pyarrow.fs."""

from __future__ import annotations

import uuid

import pyarrow.fs as pafs


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def read_bytes(uri: str) -> bytes:
    fs, path = _resolve(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def exists(uri: str) -> bool:
    fs, path = _resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_bytes_atomically(uri: str, data: bytes) -> None:
    """Write then move into place, so a killed trainer never leaves half a checkpoint."""
    fs, path = _resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    temp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(temp) as stream:
        stream.write(data)
    fs.move(temp, path)


def delete_folder(uri: str) -> None:
    fs, path = _resolve(uri)
    fs.delete_dir(path)
