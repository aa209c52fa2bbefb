"""Runs over a range of partitions: a backfill of small partitions (a history import) runs many per run.
This module alone knows that a run may hold several partitions: asset bodies are plain functions
of one partition, a day, a week or a month (`materialize_days`, `check_each_day`,
`suite_each_day`; "day" below is any partition), and how many a backfill run holds is
`days_per_backfill_run`.

A per-day asset computes each of the run's days on its own and hands the IO manager one value
per day (a dict for a range), so every day is stored, described and checked as a day. Dagster
records one check result per check and step; for a range, each day's result is logged as that
partition's evaluation, and the step's own result sums the days up (it fails, and blocks the
range downstream, when any day fails; soft rules judged over the range are reported there once).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
from upath import UPath

from algo_platform.engines.polars import large_day
from algo_platform.quality.contracts import Rule
from algo_platform.resources.data_quality import DataQuality, suite_check_result
from algo_platform.resources.io_managers import local_file, read_table
from algo_platform.resources.partitions import compact_days

T = TypeVar("T")


def run_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[str]:
    """The days this run materializes or checks, oldest first (one for a nightly run)."""
    if isinstance(context, dg.AssetCheckExecutionContext):
        context = context.op_execution_context
    return list(context.partition_keys)


def per_day(values: Mapping[str, T]) -> T | dict[str, T]:
    """What the IO manager stores: the day's value, or a value per day for a range."""
    return next(iter(values.values())) if len(values) == 1 else dict(values)


def by_day(loaded: T | Mapping[str, T], days: Sequence[str]) -> dict[str, T]:
    """An input as {day: value}: the IO manager gives a value for one day and a dict for a range."""
    return dict(loaded) if len(days) > 1 else {days[0]: loaded}  # type: ignore[arg-type]


@dataclass(frozen=True)
class DayResult:
    """What an asset computed for one day: the value stored for the day, its materialization
    metadata, and the results of checks the step runs itself."""

    value: Any
    metadata: Mapping[str, Any]
    checks: Sequence[dg.AssetCheckResult] = ()


def materialize_days(
    context: dg.AssetExecutionContext, compute_day: Callable[[str, Any], DayResult], loaded: Any = None
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """An asset for every day of the run, from `compute_day(day, the day's input)`, a plain
    function of one day: each day stored, described and checked as that day's partition."""
    days = run_days(context)
    inputs = by_day(loaded, days) if loaded is not None else dict.fromkeys(days)
    results = {day: compute_day(day, value) for day, value in inputs.items()}
    describe_days(context, {day: result.metadata for day, result in results.items()})
    yield dg.Output(per_day({day: result.value for day, result in results.items()}))
    if any(result.checks for result in results.values()):
        yield from report_checks(context, context.asset_key, {day: list(r.checks) for day, r in results.items()})


def describe_days(context: dg.AssetExecutionContext, metadata: Mapping[str, Mapping[str, Any]]) -> None:
    """Each day's materialization metadata (rows, drops, quality) on that day's partition."""
    for day, values in metadata.items():
        context.add_asset_metadata(dict(values), partition_key=day)


def report_checks(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    asset_key: dg.AssetKey,
    results: Mapping[str, Sequence[dg.AssetCheckResult]],
) -> Iterator[dg.AssetCheckResult]:
    """Check results per day: as they are for one day; for a range, logged per day and summed up."""
    if len(results) == 1:
        yield from next(iter(results.values()))
        return
    op_context = context.op_execution_context if isinstance(context, dg.AssetCheckExecutionContext) else context
    by_check: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for day, day_results in results.items():
        for result in day_results:
            name = result.check_name or context.check_specs[0].name  # type: ignore[union-attr]
            _log_for_day(op_context, asset_key, name, day, result)
            by_check.setdefault(name, []).append((day, result))
    for name, outcomes in by_check.items():
        failed = [(day, r) for day, r in outcomes if not r.passed]
        errors = [day for day, r in failed if r.severity == dg.AssetCheckSeverity.ERROR]
        days = [day for day, _ in outcomes]
        description = (
            f"{len(days)} partitions ({days[0]}..{days[-1]}): all passed"
            if not failed
            else f"failed on {compact_days([d for d, _ in failed])}; {failed[0][0]}: {failed[0][1].description}"
        )
        yield dg.AssetCheckResult(
            check_name=name,
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={"days": len(days), "failed_days": dg.MetadataValue.json([d for d, _ in failed])},
        )


def _log_for_day(
    op_context: dg.OpExecutionContext,
    asset_key: dg.AssetKey,
    check_name: str,
    day: str,
    result: dg.AssetCheckResult,
    severity: dg.AssetCheckSeverity | None = None,
) -> None:
    """`result` recorded as the check's evaluation on the partition `day` (a range run's own result has none)."""
    op_context.log_event(
        dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=check_name,
            passed=result.passed,
            metadata=result.metadata,
            severity=severity or result.severity,
            description=result.description,
            partition=day,
        )
    )


def check_each_day(
    context: dg.AssetCheckExecutionContext,
    values: Mapping[str, T],
    check: Callable[[str, T], dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckResult]:
    """A check run on every day of the run, reported per day."""
    asset_key = context.check_specs[0].asset_key
    yield from report_checks(context, asset_key, {day: [check(day, value)] for day, value in values.items()})


DAY_COLUMN = "partition_day"


def _within_a_day(rule: Rule) -> Rule:
    """A rule as it applies to one day, on a table of many days with a day column: a value unique
    within its day (a user of the day's features) is unique together with the day."""
    if rule.expectation == "ExpectTableColumnsToMatchSet":
        return Rule(
            rule.expectation, {**rule.kwargs, "column_set": [*rule.kwargs["column_set"], DAY_COLUMN]}, rule.hard
        )
    if rule.expectation != "ExpectColumnValuesToBeUnique":
        return rule
    kwargs = {k: v for k, v in rule.kwargs.items() if k != "column"}
    return Rule(
        "ExpectCompoundColumnsToBeUnique", {**kwargs, "column_list": [DAY_COLUMN, rule.kwargs["column"]]}, rule.hard
    )


def suite_each_day(
    context: dg.AssetCheckExecutionContext,
    data_quality: DataQuality,
    loaded: pd.DataFrame | Mapping[str, pd.DataFrame],
    rules_for: Callable[[str, str], list],
    suite_name: str,
) -> Iterator[dg.AssetCheckResult]:
    """A Great Expectations suite on each day of the run.

    A range is validated as one table first (hard rules hold row by row, and one validation
    costs the same fixed time whatever its size); only when a hard rule fails is each day
    validated alone, to say which days fail. `rules_for(first_day, last_day)` gives the rules for a span."""
    days = run_days(context)
    frames = by_day(loaded, days)
    if all(isinstance(value, UPath) for value in frames.values()):  # stored days, by path
        frames, large = _read_days_that_fit(frames)
        if large:  # each day validated on its own; a large one in parts
            yield from check_each_day(
                context,
                {day: frames.get(day, large.get(day)) for day in days},
                lambda day, value: suite_check_result(
                    _validate_day(data_quality, value, rules_for(day, day), suite_name), suite_name
                ),
            )
            return
    if len(frames) > 1:
        empty = {day: [_nothing_to_validate(suite_name)] for day, frame in frames.items() if frame.empty}
        present = {day: frame for day, frame in frames.items() if not frame.empty}
        if not present:
            yield from report_checks(context, context.check_specs[0].asset_key, empty)
            return
        whole = pd.concat(present.values(), keys=list(present), names=[DAY_COLUMN, None]).reset_index(DAY_COLUMN)
        outcomes = data_quality.validate(whole, [_within_a_day(r) for r in rules_for(days[0], days[-1])], suite_name)
        if not any(o.rule.hard and not o.passed for o in outcomes):
            yield from _soft_rules_for_the_range(context, outcomes, suite_name, present, empty, days)
            return
    yield from check_each_day(
        context,
        frames,
        lambda day, frame: suite_check_result(
            data_quality.validate(frame, rules_for(day, day), suite_name), suite_name
        ),
    )


def _soft_rules_for_the_range(
    context: dg.AssetCheckExecutionContext,
    outcomes: list,
    suite_name: str,
    present: Mapping[str, pd.DataFrame],
    empty: Mapping[str, list[dg.AssetCheckResult]],
    days: list[str],
) -> Iterator[dg.AssetCheckResult]:
    """Hard rules held on every day: each day passes. Soft rules (shares, means) were judged on the
    range as a whole, so a soft failure is one finding about the range (often a rule that does not
    fit the data, e.g. a column the source never has), reported once in the step's result rather
    than as a warning on each of its days."""
    asset_key = context.check_specs[0].asset_key
    verdict = suite_check_result(outcomes, suite_name)
    held = dg.AssetCheckResult(
        passed=True,
        description=f"{suite_name}: hard rules met; soft rules judged over the run's {len(days)} partitions "
        f"({days[0]}..{days[-1]}): {verdict.description}",
    )
    op_context = context.op_execution_context
    for day in days:
        result = held if day in present else empty[day][0]
        _log_for_day(op_context, asset_key, context.check_specs[0].name, day, result, dg.AssetCheckSeverity.WARN)
    yield dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(days)} partitions ({days[0]}..{days[-1]}), soft rules over the range: {verdict.description}",
        metadata={**verdict.metadata, "days": len(days)},
    )


def _validate_day(data_quality: DataQuality, day: pd.DataFrame | UPath, rules: list, suite_name: str) -> list:
    if isinstance(day, pd.DataFrame):
        return data_quality.validate(day, rules, suite_name)
    with local_file(day) as local:
        return data_quality.validate_file(local, rules, suite_name, large_day.ROWS_PER_PART)


def _read_days_that_fit(paths: Mapping[str, UPath]) -> tuple[dict[str, pd.DataFrame], dict[str, UPath]]:
    """The stored days small enough to validate whole, read as pandas, and the paths of the others."""
    frames, large = {}, {}
    for day, path in paths.items():
        with local_file(path) as local:
            if pq.read_metadata(local).num_rows > large_day.LARGEST_DAY_IN_MEMORY:
                large[day] = path
            else:
                frames[day] = read_table(path).to_pandas()
    return frames, large


def _nothing_to_validate(suite_name: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, description=f"{suite_name}: no rows on this day; nothing to validate")


def days_per_backfill_run(days: int | str) -> dg.BackfillPolicy:
    """How many days one backfill run ingests (project.yaml: data.days_per_run).

    One day per run (the default) bounds memory by one day of events (10M/day would not fit 30
    days in one process) and runs days in parallel up to the run queue's limit. A history of
    small days (an import of years of ratings) runs many days per run: each run costs seconds
    to start whatever it holds, so 4,000 one-day runs take hours where 40 runs take minutes.
    `auto` is resolved from the project's imports when its definitions are built
    (ingest/backfill_size.py); one left unresolved knows of no import: one day per run."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=1 if days == "auto" else days)
