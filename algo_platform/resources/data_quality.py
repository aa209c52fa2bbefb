"""The data-quality resource: the thresholds of the quality gates, and Great Expectations suites
(`algo_platform.quality.suites`) run for a step, their verdicts as asset check results."""

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg

from algo_platform.quality import suites
from algo_platform.quality.contracts import Rule
from algo_platform.quality.suites import RuleOutcome, SuiteVerdict


class DataQuality(dg.ConfigurableResource):
    """Great Expectations validation and the thresholds of the quality gates."""

    quality_threshold: float = 0.9  # raw_events fails (blocking) below this quality score
    allowed_lateness_minutes: int = 60  # events this long before the day still count as timely
    drift_psi_threshold: float = 0.2  # population stability index above which drift is reported
    # PSI between samples of a few dozen events is noise: smaller partitions are not compared.
    drift_min_rows: int = 200
    examples_per_expectation: int = 5

    @property
    def allowed_lateness(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.allowed_lateness_minutes)

    def validate(self, frame: Any, rules: list[Rule], suite_name: str) -> list[RuleOutcome]:
        """Outcomes of `rules` on a pandas frame, or on a Spark DataFrame (validated by Spark)."""
        return suites.validate(frame, rules, suite_name, self.examples_per_expectation)

    def validate_file(self, path: Path, rules: list[Rule], suite_name: str, rows_per_part: int) -> list[RuleOutcome]:
        """Outcomes of `rules` on a stored table too large to validate as one pandas frame (in parts)."""
        return suites.validate_file(path, rules, suite_name, rows_per_part, self.examples_per_expectation)


def suite_check_result(outcomes: list[RuleOutcome], suite_name: str) -> dg.AssetCheckResult:
    """A suite's verdict as Dagster's check result: ERROR if a hard rule failed (blocks
    downstream), WARN if only soft rules failed, with a per-expectation breakdown."""
    verdict = SuiteVerdict.of(outcomes, suite_name)
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR if verdict.blocking else dg.AssetCheckSeverity.WARN,
        description=verdict.description,
        metadata={
            **verdict.counts,
            "results": dg.MetadataValue.md(verdict.results_markdown),
            "unexpected_counts": dg.MetadataValue.json(verdict.unexpected_counts),
        },
    )
