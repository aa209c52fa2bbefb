"""A summary (`algo_platform.quality.summaries`) as Dagster metadata."""

from typing import Any

import dagster as dg

from algo_platform.quality.summaries import Json, Markdown


def as_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    def value(item: Any) -> Any:
        if isinstance(item, Markdown):
            return dg.MetadataValue.md(item.text)
        if isinstance(item, Json):
            return dg.MetadataValue.json(item.value)
        return item

    return {key: value(item) for key, item in summary.items()}
