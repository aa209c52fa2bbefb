"""An object store that stops answering, told apart from a missing object or a bad table.

A step that loses its store mid-run fails with one line that says so (the endpoint it could not
reach and what it was doing) instead of Dagster's generic "error while handling output" with the
cause buried in a chained traceback. Nothing is half-written either way: tables, checkpoints and
landing files are written under a temp name and renamed into place (`atomic.py`), and S3 makes
an object visible only when its upload completes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:  # botocore is there whenever s3fs or boto3 is: the clients of an S3 store
        from botocore import exceptions as botocore_errors

        errors += [botocore_errors.ConnectionError, botocore_errors.HTTPClientError]
    except ImportError:
        pass
    return tuple(errors)


def outage_cause(error: BaseException) -> BaseException | None:
    """The connection failure behind `error` (its cause or context chain), or None."""
    kinds = _connection_errors()
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def store_outage_as_failure(action: str, writing: bool) -> Iterator[None]:
    """Turn a lost connection to the store during `action` into a dg.Failure that says so."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as error:
        cause = outage_cause(error)
        if cause is None:
            raise
        outcome = (
            "Nothing was written in its place: a file lands whole (temp name, then rename) or not at all."
            if writing
            else "Nothing was changed."
        )
        raise dg.Failure(
            description=(
                f"The object store stopped answering while {action}: {str(cause).splitlines()[0][:300]}. "
                f"{outcome} Re-execute the run once the store answers again."
            ),
            allow_retries=True,
        ) from error
