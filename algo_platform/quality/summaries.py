"""What a table's materialization says about it, from figures any engine computes: the same keys,
the same rounding, the same drop breakdown whether polars or Spark cleaned the day. Values are
plain, with `Markdown` and `Json` marking the two rich kinds; the pipeline turns them into Dagster
metadata values, the Spark job into what Dagster Pipes carries."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Json:
    value: Any


def markdown_table(frame: pd.DataFrame) -> Markdown:
    return Markdown(frame.to_markdown(index=False))


def all_rows_dropped(day: object, rows_in: int, dropped: Mapping[str, int]) -> str:
    """Why a day that had rows and kept none of them fails."""
    reasons = ", ".join(f"{reason}: {count:,}" for reason, count in dropped.items() if count)
    return f"{day}: all {rows_in:,} rows were dropped ({reasons}); fix the day's files"


def cleaned_events_summary(
    *,
    rows_in: int,
    rows_kept: int,
    dropped: Mapping[str, int],
    dimensions: Mapping[str, float],
    profile: Mapping[str, Any],
    users: int,
    items: int,
    preview: pd.DataFrame,
) -> dict[str, Any]:
    """A cleaned day: rows in, kept and dropped by reason, the quality dimensions, the profile,
    distinct users and items, the first rows."""
    breakdown = pd.DataFrame({"reason": list(dropped), "rows": list(dropped.values())})
    return {
        **{name: round(value, 6) for name, value in dimensions.items()},
        "profile": Json(dict(profile)),
        "rows_in": rows_in,
        "rows_kept": rows_kept,
        "rows_dropped": rows_in - rows_kept,
        "kept_share": round(rows_kept / max(rows_in, 1), 4),
        **{f"dropped_{reason}": count for reason, count in dropped.items()},
        "dropped_by_reason": markdown_table(breakdown),
        "users": int(users),
        "items": int(items),
        "preview": markdown_table(preview),
        "dagster/row_count": rows_kept,
    }


def feature_summary(
    rows: int, mean_watch_ratio: float | None, like_rate: float | None, skip_rate: float | None, top: pd.DataFrame
) -> dict:
    """A user or item feature table: its size, mean rates, and its top rows by events."""
    return {
        "rows": rows,
        "dagster/row_count": rows,
        # No watch time at all is a ratio of 0; a rate of no events is unknown (NaN).
        "mean_watch_ratio": 0.0
        if mean_watch_ratio is None or math.isnan(mean_watch_ratio)
        else float(mean_watch_ratio),
        "mean_like_rate": math.nan if like_rate is None else float(like_rate),
        "mean_skip_rate": math.nan if skip_rate is None else float(skip_rate),
        "preview": markdown_table(top.round(dict.fromkeys(top.select_dtypes("float").columns, 3))),
    }


def plain(value: Any) -> Any:
    """A NaN as no value (JSON has none); others as they are."""
    return None if isinstance(value, float) and math.isnan(value) else value
