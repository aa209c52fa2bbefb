"""Each table's data contract: the rules a table must meet, as data (GX 1.x expectation names and
arguments), and the names of the suites that check them. One definition of "valid" for the polars
steps, the Spark job and the Great Expectations suites.

Hard rules fail the check with ERROR severity and block everything downstream; soft rules warn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from algo_platform.core.calendar import Period
from algo_platform.core.schema import CANONICAL_COLUMNS, EVENT_TYPES
from algo_platform.quality.dimensions import day_bounds


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite. `expectation` is a GX 1.x expectation class name; `hard`
    rules fail the check with ERROR severity (blocking downstream), soft ones with WARN."""

    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    hard: bool = True
    # A rule on an optional column is checked only where the column holds any value: a source that
    # never has it (a ratings log has no watch time) is not a defect on every day.
    when_supplied: bool = False

    def describe(self) -> str:
        column = self.kwargs.get("column")
        return f"{self.expectation}({column})" if column else self.expectation


def hard(expectation: str, **kwargs: Any) -> Rule:
    return Rule(expectation, kwargs, hard=True)


def soft(expectation: str, **kwargs: Any) -> Rule:
    return Rule(expectation, kwargs, hard=False)


def if_supplied(rule: Rule) -> Rule:
    """`rule`, checked only where its column holds any value."""
    return Rule(rule.expectation, rule.kwargs, rule.hard, when_supplied=True)


def extra_column_rules(extra_columns: Mapping[str, str]) -> list[Rule]:
    """Rules a declared extra column gets from its type: mostly present where the source has it;
    numbers finite (an overflow or a parse of "inf" is no rating); text not empty."""
    rules = []
    for column, kind in extra_columns.items():
        rules.append(if_supplied(soft("ExpectColumnValuesToNotBeNull", column=column, mostly=0.99)))
        if kind in ("int64", "float64"):
            rules.append(hard("ExpectColumnValuesToBeBetween", column=column, min_value=-1e300, max_value=1e300))
        else:
            rules.append(hard("ExpectColumnValueLengthsToBeBetween", column=column, min_value=1))
    return rules


RAW_SUITE = "raw_events_suite"


CLEANED_SUITE = "cleaned_events_suite"


def raw_events_rules(extra_columns: Sequence[str] = ()) -> list:
    """Raw data may hold defects (cleaning removes them): those are soft rules that report
    how many; the hard rules are the structure that loading guarantees."""
    return [
        hard(
            "ExpectTableColumnsToMatchSet",
            column_set=[*CANONICAL_COLUMNS, *extra_columns, "source_file"],
            exact_match=True,
        ),
        hard("ExpectColumnValuesToNotBeNull", column="event_id"),
        soft("ExpectColumnValuesToNotBeNull", column="user_id"),
        soft("ExpectColumnValuesToNotBeNull", column="item_id"),
        soft("ExpectColumnValuesToNotBeNull", column="ts"),
        if_supplied(soft("ExpectColumnValuesToBeInSet", column="event_type", value_set=list(EVENT_TYPES))),
        if_supplied(soft("ExpectColumnValuesToBeBetween", column="watch_ms", min_value=0)),
        soft("ExpectColumnValuesToBeUnique", column="event_id"),
    ]


def cleaned_events_rules(
    day: dt.date | Period, last_day: dt.date | Period | None = None, extra_columns: Mapping[str, str] | None = None
) -> list:
    """What every model input may rely on: hard rules block training on a violation (for the
    partitions `day`..`last_day` when a run covers a range). Rules on optional columns apply where
    the source supplies the column; declared extra columns get rules from their type."""
    start, end = day_bounds(day)[0], day_bounds(last_day or day)[1]
    # No row-count rule: an empty day is valid, and a day whose rows were all dropped fails in the asset.
    return [
        *(hard("ExpectColumnValuesToNotBeNull", column=c) for c in ("event_id", "user_id", "item_id", "ts")),
        hard("ExpectColumnValuesToBeUnique", column="event_id"),
        hard("ExpectColumnValuesToBeInSet", column="event_type", value_set=list(EVENT_TYPES)),
        if_supplied(hard("ExpectColumnValuesToBeBetween", column="watch_ms", min_value=0)),
        if_supplied(hard("ExpectColumnValuesToBeBetween", column="item_duration_ms", min_value=1)),
        hard("ExpectColumnValuesToBeBetween", column="ts", min_value=start, max_value=end, strict_max=True),
        # Six hours of one short video is a logging bug more often than a viewer.
        if_supplied(soft("ExpectColumnValuesToBeBetween", column="watch_ms", max_value=6 * 3_600_000, mostly=0.999)),
        if_supplied(soft("ExpectColumnValuesToNotBeNull", column="watch_ms", mostly=0.99)),
        *extra_column_rules(extra_columns or {}),
    ]


USER_FEATURES_SUITE = "user_features_suite"


ITEM_FEATURES_SUITE = "item_features_suite"


RATE_COLUMNS = ("completion_rate", "like_rate", "share_rate", "comment_rate", "skip_rate")


def _feature_rules(key: str) -> list:
    # No row-count rule: a day without events has no features, and any event makes a row.
    return [
        hard("ExpectColumnValuesToNotBeNull", column=key),
        hard("ExpectColumnValuesToBeUnique", column=key),
        hard("ExpectColumnValuesToBeBetween", column="events", min_value=1),
        *(hard("ExpectColumnValuesToBeBetween", column=rate, min_value=0, max_value=1) for rate in RATE_COLUMNS),
        hard("ExpectColumnValuesToBeBetween", column="mean_watch_ratio", min_value=0, max_value=5),
        # More skips than views on an average account is a product problem worth a look.
        soft("ExpectColumnMeanToBeBetween", column="skip_rate", max_value=0.5),
    ]


def user_features_rules() -> list:
    return _feature_rules("user_id")


def item_features_rules() -> list:
    return [
        *_feature_rules("item_id"),
        hard("ExpectColumnValuesToBeBetween", column="unique_users", min_value=1),
        hard("ExpectColumnValuesToBeBetween", column="popularity_rank", min_value=1),
    ]
