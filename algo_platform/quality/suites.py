"""Great Expectations 1.x suites, run on a table: one outcome per rule of a contract, and the
verdict of a suite (pass, warn on soft failures, error on hard ones) with its breakdown.

GX is imported on first use, never when a code location loads (it takes seconds). No Dagster here:
the Spark job reports verdicts through Pipes, the pipeline turns them into asset check results.
"""

import datetime as dt
import functools
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from algo_platform.quality.contracts import Rule


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    passed: bool
    observed: Any
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[Any]
    error: str | None = None
    element_count: int | None = None
    missing_count: int | None = None
    not_checked: bool = False  # an optional column the data does not supply


def _not_supplied(rule: Rule) -> RuleOutcome:
    return RuleOutcome(rule, True, "column not supplied: not checked", None, None, [], not_checked=True)


def _supplied(frame: Any, rules: list[Rule]) -> tuple[list[Rule], set[int]]:
    """The rules to validate, and the positions of rules on optional columns with no value in `frame`."""
    spark = not isinstance(frame, pd.DataFrame)
    absent: set[int] = set()
    for index, rule in enumerate(rules):
        column = rule.kwargs.get("column")
        if not rule.when_supplied or column is None:
            continue
        if spark:
            from pyspark.sql import functions as F  # noqa: N812 - Spark's own idiom

            has_values = column in frame.columns and frame.where(F.col(column).isNotNull()).limit(1).count() > 0
        else:
            has_values = column in frame.columns and bool(frame[column].notna().any())
        if not has_values:
            absent.add(index)
    return [rule for index, rule in enumerate(rules) if index not in absent], absent


def _keep_spark_connect_from_exiting_the_process() -> None:
    """pyspark's Spark Connect package, on import, takes a process whose __main__ has no file and
    no module spec (Dagster's run workers, `python -c` children) for a doctest run and calls
    sys.exit(0). GX imports it only to recognise Connect DataFrames, which the platform does not
    use: in such a process it is marked unimportable, so GX's guarded import just fails."""
    main = sys.modules.get("__main__")
    no_file = main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
    if no_file and not hasattr(sys, "ps1"):
        sys.modules.setdefault("pyspark.sql.connect", None)  # type: ignore[arg-type]


@functools.cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from GX
    _keep_spark_connect_from_exiting_the_process()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every frame under this many bytes with a full-frame hash, only to label the
    # batch in stored results. Our context is ephemeral, so the hash is pure cost (~0.9 s per
    # million rows); a threshold of 0 turns it off.
    pandas_execution_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


@functools.cache
def _batch_definition(kind: str = "pandas"):
    """GX's batch definition for a whole in-memory frame: pandas, or a Spark DataFrame (GX's Spark
    datasource runs each expectation as Spark aggregations, where the data is)."""
    gx, context = _context()
    source = (
        context.data_sources.add_spark("algo_platform_spark")
        if kind == "spark"
        else context.data_sources.add_pandas("algo_platform")
    )
    return gx, source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole_frame")


def _plain(value: Any) -> Any:
    """JSON-friendly version of a GX observed value or example."""
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


AGGREGATE_EXPECTATION = re.compile(r"ExpectColumn(Mean|Median|Max|Min|Sum|Stdev|Quantile)")


def _added_up(rule: Rule, parts: list[RuleOutcome], examples: int) -> RuleOutcome:
    """One rule's outcome on a whole table, from its outcomes on the table's parts."""
    if any(p.unexpected_count is None or p.element_count is None for p in parts):  # a table-level rule
        return RuleOutcome(rule, all(p.passed for p in parts), parts[0].observed, None, None, [], parts[0].error)
    unexpected = sum(p.unexpected_count for p in parts)
    elements = sum(p.element_count for p in parts)
    # GX counts not-null rules over every row, the others over the rows with a value.
    counted = (
        elements
        if rule.expectation == "ExpectColumnValuesToNotBeNull"
        else elements - sum(p.missing_count or 0 for p in parts)
    )
    share = unexpected / counted if counted else 0.0
    mostly = rule.kwargs.get("mostly")
    passed = all(p.error is None for p in parts) and (share <= 1 - mostly if mostly is not None else unexpected == 0)
    return RuleOutcome(
        rule=rule,
        passed=passed,
        observed=None,
        unexpected_count=unexpected,
        unexpected_percent=100 * share,
        examples=[example for p in parts for example in p.examples][:examples],
        error=next((p.error for p in parts if p.error), None),
        element_count=elements,
        missing_count=sum(p.missing_count or 0 for p in parts),
    )


def _for_gx(frame: pd.DataFrame, rules: list[Rule]) -> pd.DataFrame:
    """The columns the rules use, with nullable numeric columns as float64.

    GX's range check is vectorised only for numpy int/float columns; on pandas' nullable Int64 it
    calls a Python function per row (about 12x slower). float64 holds every millisecond count
    exactly (below 2**53), and nulls become NaN, which GX skips as it skips <NA>.
    """
    table_rule = any("column" not in rule.kwargs for rule in rules)
    columns = list(frame.columns) if table_rule else list(dict.fromkeys(r.kwargs["column"] for r in rules))
    view = frame[columns]
    nullable_numeric = [
        c
        for c in columns
        if isinstance(view[c].dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(view[c])
    ]
    return view.astype(dict.fromkeys(nullable_numeric, "float64")) if nullable_numeric else view


def _kwargs_key(kwargs: Any) -> str:
    items = dict(kwargs)
    items.pop("batch_id", None)
    return repr(sorted((k, repr(v)) for k, v in items.items()))


def validate(frame: Any, rules: list[Rule], suite_name: str, examples: int = 5) -> list[RuleOutcome]:
    """Outcomes of `rules` on a pandas frame, or on a Spark DataFrame (validated by Spark)."""
    spark = not isinstance(frame, pd.DataFrame)
    if frame.isEmpty() if spark else frame.empty:
        # A day without events is valid; a mean or maximum of nothing is undefined, not a defect.
        rules = [rule for rule in rules if not AGGREGATE_EXPECTATION.match(rule.expectation)]
    every_rule = rules
    rules, absent = _supplied(frame, rules)
    gx, batch_definition = _batch_definition("spark" if spark else "pandas")
    suite = gx.ExpectationSuite(
        name=suite_name,
        expectations=[getattr(gx.expectations, rule.expectation)(**rule.kwargs) for rule in rules],
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame if spark else _for_gx(frame, rules)})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples})
    # GX returns results in its own order; match them back to rules by their configuration.
    by_config = {(r.expectation_config.type, _kwargs_key(r.expectation_config.kwargs)): r for r in result.results}
    outcomes = []
    for rule, expectation in zip(rules, suite.expectations, strict=True):
        config = expectation.configuration
        found = by_config[(config.type, _kwargs_key(config.kwargs))]
        details = found.result or {}
        error = (found.exception_info or {}).get("exception_message") if found.exception_info else None
        outcomes.append(
            RuleOutcome(
                rule=rule,
                passed=bool(found.success),
                observed=_plain(details.get("observed_value")),
                unexpected_count=details.get("unexpected_count"),
                unexpected_percent=details.get("unexpected_percent"),
                examples=[_plain(v) for v in details.get("partial_unexpected_list") or []],
                error=error,
                element_count=details.get("element_count"),
                missing_count=details.get("missing_count"),
            )
        )
    checked = iter(outcomes)
    return [_not_supplied(rule) if index in absent else next(checked) for index, rule in enumerate(every_rule)]


def validate_file(
    path: Path, rules: list[Rule], suite_name: str, rows_per_part: int, examples: int = 5
) -> list[RuleOutcome]:
    """Outcomes of `rules` on a stored table too large to validate as one pandas frame: GX runs
    on parts of at most about `rows_per_part` rows, and the counts are added up. A rule that
    values be unique splits the rows by a hash of that column, so a value's repeats are all in
    one part and uniqueness is judged exactly; a mean or another aggregate cannot be added up
    and is refused."""
    aggregates = [rule.describe() for rule in rules if AGGREGATE_EXPECTATION.match(rule.expectation)]
    if aggregates:
        raise ValueError(f"{suite_name}: {', '.join(aggregates)} cannot be validated in parts")
    rows = pq.read_metadata(path).num_rows
    parts = max(1, math.ceil(rows / rows_per_part))
    unique = {rule.kwargs["column"] for rule in rules if rule.expectation == "ExpectColumnValuesToBeUnique"}
    if len(unique) > 1:
        raise ValueError(f"{suite_name}: more than one unique column ({', '.join(sorted(unique))}) to split by")
    table = pl.scan_parquet(path)
    if unique:
        in_part = pl.col(next(iter(unique))).hash(seed=0) % parts
    else:
        table, in_part = table.with_row_index("_row"), pl.col("_row") % parts
    outcomes = []
    for part in range(parts):
        rows_of_part = table.filter(in_part == part).drop("_row", strict=False)
        outcomes.append(validate(rows_of_part.collect(engine="streaming").to_pandas(), rules, suite_name, examples))
    return [_added_up(rule, [o[index] for o in outcomes], examples) for index, rule in enumerate(rules)]


@dataclass(frozen=True)
class SuiteVerdict:
    """What a suite's outcomes add up to: passed, or failed on soft rules only (a warning), or on
    a hard rule (blocking everything downstream), with the breakdown a person reads."""

    passed: bool
    blocking: bool
    description: str
    counts: dict[str, int]
    results_markdown: str
    unexpected_counts: dict[str, int]

    @classmethod
    def of(cls, outcomes: list[RuleOutcome], suite_name: str) -> "SuiteVerdict":
        not_checked = sorted({o.rule.kwargs["column"] for o in outcomes if o.not_checked})
        outcomes = [o for o in outcomes if not o.not_checked]
        failed_hard = [o for o in outcomes if not o.passed and o.rule.hard]
        failed_soft = [o for o in outcomes if not o.passed and not o.rule.hard]
        table = pd.DataFrame(
            [
                {
                    "expectation": o.rule.describe(),
                    "kind": "hard" if o.rule.hard else "soft",
                    "passed": o.passed,
                    "observed": o.observed,
                    "unexpected": o.unexpected_count,
                    "unexpected_%": None if o.unexpected_percent is None else round(o.unexpected_percent, 4),
                    "examples": ", ".join(map(str, o.examples)) or o.error or "",
                }
                for o in outcomes
            ]
        )
        return cls(
            passed=not failed_hard and not failed_soft,
            blocking=bool(failed_hard),
            description=(
                f"{suite_name}: {len(outcomes) - len(failed_hard) - len(failed_soft)}/{len(outcomes)} expectations met"
                + (f"; hard failures: {', '.join(o.rule.describe() for o in failed_hard)}" if failed_hard else "")
                + (f"; soft failures: {', '.join(o.rule.describe() for o in failed_soft)}" if failed_soft else "")
                + (f"; not checked (the data has no {', '.join(not_checked)})" if not_checked else "")
            ),
            counts={
                "expectations": len(outcomes),
                "failed_hard_rules": len(failed_hard),
                "failed_soft_rules": len(failed_soft),
                "columns_not_supplied": len(not_checked),
            },
            results_markdown=table.to_markdown(index=False),
            unexpected_counts={
                o.rule.describe(): o.unexpected_count for o in outcomes if o.unexpected_count is not None
            },
        )
