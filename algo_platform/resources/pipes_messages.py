"""Pipes messages from a local process, read a whole line at a time.

Dagster's file message reader tails the file with `readline()`, which also returns a line the
external process is still writing: a message longer than one write (a table's metadata, a check
with its examples) arrives in pieces, the first piece fails to parse as JSON, the reader thread
dies, and every later message of the run is lost (the step then fails for an asset check that
"did not yield"). This reader hands a line over only once its newline has arrived, and reads the
file to its end once the process has exited, so its last message is never missed either.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg


def whole_lines(path: str, should_stop: Callable[[], bool], poll_seconds: float = 0.01) -> Iterator[str]:
    """The lines appended to `path` until `should_stop()`, each only once it is complete."""
    pending = ""
    with open(path, encoding="utf-8") as stream:
        while True:
            piece = stream.readline()
            if piece:
                pending += piece
                if pending.endswith("\n"):
                    yield pending
                    pending = ""
                continue
            if should_stop():
                # The writer has exited: whatever it wrote after the last read is complete now.
                rest = pending + stream.read()
                yield from (line for line in rest.splitlines() if line.strip())
                return
            time.sleep(poll_seconds)


class WholeLineFileMessageReader(dg.PipesFileMessageReader):
    """dagster's PipesFileMessageReader, parsing whole lines only (see the module docstring)."""

    def _reader_thread(self, handler, is_resource_complete) -> None:
        try:
            for line in whole_lines(self._path, is_resource_complete.is_set):
                handler.handle_message(json.loads(line))
        except Exception:
            handler.report_pipes_framework_exception(f"{type(self).__name__} reader thread", sys.exc_info())
            raise


class WholeLineTempFileMessageReader(dg.PipesTempFileMessageReader):
    """The default message reader of PipesSubprocessClient, reading whole lines only."""

    @contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        with tempfile.TemporaryDirectory() as folder:
            reader = WholeLineFileMessageReader(
                os.path.join(folder, "messages"), include_stdio_in_messages=self._include_stdio_in_messages
            )
            with reader.read_messages(handler) as params:
                yield params
