"""The data page's charts as Plotly figure specifications (plain JSON), from `profiles.overview`.

The browser draws them with the plotly.js bundled in the `plotly` package, which the platform
serves itself (no CDN: the page works inside a company network). Colours are the Okabe-Ito
palette and viridis, both readable with the common colour-vision deficiencies; every chart's
numbers download as CSV from its own button (web/static/charts.js).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from algo_platform.profiles.compute import QUALITY_DIMENSIONS, WEEKDAYS
from algo_platform.profiles.overview import COHORT_WEEKS, Overview

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
# Beyond this many periods a series is drawn as lines and areas: a bar or a marker per day is an
# element per day for the browser.
MOST_BARS = 366
DRIFT_THRESHOLD = 0.2  # the drift check's default (DataQuality.drift_psi_threshold)


@dataclass
class Chart:
    id: str
    title: str
    data: list[dict]
    layout: dict = field(default_factory=dict)
    note: str = ""

    def spec(self) -> dict[str, Any]:
        base = {
            "margin": {"l": 56, "r": 16, "t": 8, "b": 40},
            "height": 300,
            "colorway": list(OKABE_ITO),
            "legend": {"orientation": "h", "y": -0.2},
            "font": {"family": "system-ui, sans-serif", "size": 12},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        }
        return {"id": self.id, "title": self.title, "note": self.note, "data": self.data, "layout": base | self.layout}


def _label(value: str | None) -> str:
    """A value from the data as a chart label: Plotly reads a little HTML in labels (links, bold),
    and a device or region name is whatever a file said, so its markup is shown as text."""
    return html.escape(value if value is not None else "(none)")


def _stacked(frame: pl.DataFrame, column: str) -> dict:
    """One layer of a stack over time: bars for a year or less, else a stacked area (one path per
    layer instead of a rectangle per bar: thousands of days draw as fast as a hundred)."""
    trace = {"x": _days(frame), "y": _values(frame, column), "name": column.replace("_", " ")}
    if frame.height <= MOST_BARS:
        return {"type": "bar", **trace}
    return {"type": "scatter", "mode": "lines", "stackgroup": "rows", "line": {"width": 0.5}, **trace}


def _days(frame: pl.DataFrame, column: str = "day") -> list[str]:
    return frame.get_column(column).cast(pl.String).to_list()


def _values(frame: pl.DataFrame, column: str, digits: int = 4) -> list:
    series = frame.get_column(column)
    if series.dtype.is_float():
        series = series.round(digits)
    return [None if value != value else value for value in series.to_list()]  # NaN: no value in JSON


def _bar(chart_id: str, title: str, frame: pl.DataFrame, key: str = "key", note: str = "") -> Chart:
    return Chart(
        chart_id,
        title,
        [
            {
                "type": "bar",
                "x": [_label(value) for value in frame.get_column(key).cast(pl.String).to_list()],
                "y": _values(frame, "events"),
                "name": "events",
                "marker": {"color": OKABE_ITO[0]},
            }
        ],  # fmt: skip
        {"xaxis": {"type": "category"}},
        note,
    )


def _categories(overview: Overview) -> list[Chart]:
    charts = []
    names = {"event_type": "Event types", "watch_ratio": "Watch ratio (watch time / item duration)",
             "device": "Devices", "region": "Regions"}  # fmt: skip
    for section, frame in overview.categories.items():
        if section == "watch_ratio":
            frame = frame.with_columns(pl.col("key").str.extract(r"\[([\d.]+)").cast(pl.Float64).alias("_low"))
            frame = frame.sort("_low")
        if section.startswith("extra:"):
            numeric = frame.with_columns(pl.col("key").cast(pl.Float64, strict=False).alias("_value"))
            if numeric["_value"].null_count() == 0:
                frame = numeric.sort("_value")
            title = f"{section.removeprefix('extra:')} (a declared extra column)"
        else:
            title = names[section]
        charts.append(_bar(f"dist-{section.replace(':', '-')}", title, frame))
    return charts


def _hour_weekday(overview: Overview) -> Chart:
    frame = overview.hour_weekday
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for weekday, hour, events in frame.iter_rows():
        grid[weekday][hour] = events
    return Chart(
        "hour-weekday",
        "Activity by hour (UTC) and weekday",
        [
            {
                "type": "heatmap",
                "z": grid,
                "x": list(range(24)),
                "y": list(WEEKDAYS),
                "colorscale": "Viridis",
                "colorbar": {"title": {"text": "events"}},
            }
        ],  # fmt: skip
        {"yaxis": {"autorange": "reversed"}, "xaxis": {"title": {"text": "hour"}, "dtick": 2}},
    )


def _tail(kind: str, overview: Overview) -> Chart:
    frame = overview.tails[kind]
    return Chart(
        f"tail-{kind}",
        f"Events per {kind}, by rank: the long tail (Gini {overview.ginis[kind]:.2f})",
        [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": frame["rank"].to_list(),
                "y": _values(frame, "events"),
                "name": f"events per {kind}",
                "marker": {"size": 3},
            }
        ],  # fmt: skip
        {
            "xaxis": {"type": "log", "title": {"text": f"{kind} rank (1 = busiest)"}},
            "yaxis": {"type": "log", "title": {"text": "events"}},
        },  # fmt: skip
        f"{int(overview.totals[kind + 's']):,} {kind}s; Gini 0 is equal use, 1 is everything on one {kind}",
    )


def history_charts(overview: Overview, checks: pl.DataFrame | None = None) -> dict[str, list[Chart]]:
    """The whole history: volume, quality, distributions, behaviour (sections of the page)."""
    daily, drops = overview.daily, overview.drops
    volume = [
        Chart(
            "events-per-day",
            "Events per day",
            [
                {
                    "type": "scatter",
                    "mode": "lines",
                    "fill": "tozeroy",
                    "x": _days(daily),
                    "y": _values(daily, "events"),
                    "name": "events kept",
                    "line": {"width": 1},
                },
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": _days(daily),
                    "y": _values(daily, "users"),
                    "name": "active users",
                    "yaxis": "y2",
                    "line": {"width": 1, "color": OKABE_ITO[1]},
                },
            ],  # fmt: skip
            {
                "yaxis2": {"overlaying": "y", "side": "right", "showgrid": False},
                "margin": {"l": 56, "r": 56, "t": 8, "b": 40},
            },
        ),
        Chart(
            "landed-vs-dropped",
            "Rows landed and dropped, by reason (per partition)",
            [_stacked(drops, column) for column in drops.columns if column != "day"],
            {"barmode": "stack"},
            "rows read from the landing files = landed + dropped",
        ),
    ]
    quarantined = overview.quarantined.group_by("day").agg(pl.len().alias("files")).sort("day")
    volume.append(
        Chart(
            "quarantined",
            "Files quarantined per day",
            [
                {
                    "type": "bar",
                    "x": _days(quarantined),
                    "y": quarantined["files"].to_list(),
                    "name": "files",
                    "marker": {"color": OKABE_ITO[3]},
                }
            ],  # fmt: skip
            {"xaxis": {"type": "date"}},
            "the files and their reasons are listed below the chart",
        )
    )
    quality = [
        Chart(
            "quality-over-time",
            "Quality score and its four dimensions",
            [
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": _days(overview.quality),
                    "y": _values(overview.quality, name),
                    "name": name.replace("_", " "),
                    "line": {"width": 2 if name == "quality_score" else 1},
                }
                for name in QUALITY_DIMENSIONS
            ],  # fmt: skip
            {"yaxis": {"range": [0, 1.02]}},
            "score = accuracy × completeness × relevance × timeliness, of the raw rows",
        ),
        Chart(
            "drift",
            "Drift against the previous day (population stability index)",
            [
                *(
                    {
                        "type": "scatter",
                        "mode": "lines+markers" if overview.drift.height <= MOST_BARS else "lines",
                        "x": _days(overview.drift),
                        "y": _values(overview.drift, name),
                        "name": name.replace("_", " "),
                        "marker": {"size": 4},
                        "line": {"width": 1},
                    }
                    for name in overview.drift.columns
                    if name != "day"
                ),
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": [overview.first_day, overview.last_day],
                    "y": [DRIFT_THRESHOLD, DRIFT_THRESHOLD],
                    "name": "drift threshold",
                    "line": {"dash": "dash", "color": OKABE_ITO[7], "width": 1},
                },
            ],  # fmt: skip
            {},
            "days with fewer than 200 events on either side are not compared",
        ),
    ]
    if checks is not None and checks.height:
        names = [c for c in checks.columns if c != "day"]
        quality.insert(
            1,
            Chart(
                "check-outcomes",
                "Check outcomes per partition",
                [
                    {
                        "type": "heatmap",
                        "x": _days(checks),
                        "y": names,
                        "z": [_values(checks, name) for name in names],
                        "zmin": 0,
                        "zmax": 1,
                        "colorscale": [[0, OKABE_ITO[1]], [1, OKABE_ITO[0]]],
                        "showscale": False,
                        "hovertemplate": "%{x} %{y}: %{z}<extra>1 passed, 0 failed</extra>",
                    }
                ],  # fmt: skip
                {"height": 60 + 28 * len(names), "margin": {"l": 230, "r": 16, "t": 8, "b": 40}},
                "blue: passed; orange: failed; blank: not run",
            ),
        )
    distributions = [*_categories(overview), _hour_weekday(overview)]
    behaviour = [_tail("user", overview), _tail("item", overview), *_activity_charts(overview)]
    return {"Volume": volume, "Quality": quality, "Distributions": distributions, "Behaviour": behaviour}


def _sequence_lengths(lengths: pl.DataFrame) -> Chart:
    return Chart(
        "sequence-lengths",
        "Sequence lengths: events per user",
        [
            {
                "type": "bar",
                "x": lengths["events"].to_list(),
                "y": lengths["users"].to_list(),
                "name": "users",
                "marker": {"color": OKABE_ITO[2]},
            }
        ],  # fmt: skip
        {"xaxis": {"type": "category", "title": {"text": "events"}}, "yaxis": {"title": {"text": "users"}}},
    )


def _activity_charts(overview: Overview) -> list[Chart]:
    charts = []
    returning = overview.new_returning
    if returning is not None and returning.height:
        charts.append(
            Chart(
                "new-vs-returning",
                "New and returning users per day",
                [
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "stackgroup": "users",
                        "x": _days(returning),
                        "y": returning[name].to_list(),
                        "name": f"{name} users",
                    }
                    for name in ("new", "returning")
                ],  # fmt: skip
                {},
                "new: the user's first day with events",
            )
        )
    cohorts = overview.cohorts
    if cohorts is not None and cohorts.height:
        weeks = sorted(set(_days(cohorts, "cohort")))
        grid = {week: [None] * (COHORT_WEEKS + 1) for week in weeks}
        for cohort, offset, share in zip(_days(cohorts, "cohort"), cohorts["offset"], cohorts["share"], strict=True):
            grid[cohort][offset] = round(share, 4)
        charts.append(
            Chart(
                "retention-cohorts",
                "Weekly retention: share of each week's new users active N weeks later",
                [
                    {
                        "type": "heatmap",
                        "x": list(range(COHORT_WEEKS + 1)),
                        "y": weeks,
                        "z": [grid[w] for w in weeks],
                        "zmin": 0,
                        "zmax": 1,
                        "colorscale": "Viridis",
                        "colorbar": {"title": {"text": "share"}},
                    }
                ],  # fmt: skip
                {
                    "xaxis": {"title": {"text": "weeks after the first"}, "dtick": 1},
                    "yaxis": {"type": "category"},
                    "height": 120 + 18 * len(weeks),
                },  # fmt: skip
            )
        )
    if overview.sequence_lengths is not None:
        charts.append(_sequence_lengths(overview.sequence_lengths))
    return charts


def day_charts(overview: Overview) -> dict[str, list[Chart]]:
    """One day: its drops, distributions and behaviour."""
    drops = overview.drops
    reasons = [c for c in drops.columns if c != "day"]
    volume = [
        Chart(
            "landed-vs-dropped",
            "Rows landed and dropped, by reason (the day's partition)",
            [
                {
                    "type": "bar",
                    "x": [r.replace("_", " ") for r in reasons],
                    "y": [float(drops[r].sum()) for r in reasons],
                    "name": "rows",
                    "marker": {"color": OKABE_ITO[0]},
                }
            ],  # fmt: skip
            {"xaxis": {"type": "category"}},
        )
    ]
    behaviour = [_tail("user", overview), _tail("item", overview)]
    if overview.sequence_lengths is not None:
        behaviour.append(_sequence_lengths(overview.sequence_lengths))
    return {
        "Volume": volume,
        "Distributions": [*_categories(overview), _hour_weekday(overview)],
        "Behaviour": behaviour,
    }


def file_charts(overview: Overview) -> list[Chart]:
    """An upload preview: what the file holds, as the page shows a day."""
    sections = day_charts(overview)
    return [*sections["Volume"], *sections["Distributions"]]
