"""Evaluation plots (matplotlib, PNG) and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

SCORER_COLORS = {"sequence_model": "#2b6cb0", "champion": "#dd6b20", "popularity": "#a0aec0"}


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def loss_curve(losses: list[float]) -> bytes:
    figure, axis = _figure(5, 3)
    axis.plot(range(1, len(losses) + 1), losses, marker="o", color=SCORER_COLORS["sequence_model"])
    axis.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="Training loss per epoch")
    axis.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    axis.grid(alpha=0.3)
    return _png(figure)


def metric_bars(overall: pd.DataFrame, metrics: list[str]) -> bytes:
    figure, axis = _figure(7, 3.2)
    scorers = list(overall["scorer"])
    width = 0.8 / len(scorers)
    for number, scorer in enumerate(scorers):
        values = overall.loc[overall["scorer"] == scorer, metrics].iloc[0]
        positions = [m + number * width for m in range(len(metrics))]
        axis.bar(positions, values, width, label=scorer, color=SCORER_COLORS.get(scorer))
    axis.set_xticks([m + width * (len(scorers) - 1) / 2 for m in range(len(metrics))], metrics)
    axis.set(title="Model vs baselines on the held-out day", ylabel="score")
    axis.set_ylim(0, max(1e-9, overall[metrics].to_numpy().max()) * 1.25)  # room for the legend
    axis.legend(loc="upper center", ncol=len(scorers), frameon=False)
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


def segment_bars(segments: pd.DataFrame, metric: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(segments["segment"]))
    figure, axes = plt.subplots(1, len(kinds), figsize=(3.4 * len(kinds), 3.4), squeeze=False)
    for axis, kind in zip(axes[0], kinds, strict=True):
        table = segments[segments["segment"] == kind].pivot_table(index="value", columns="scorer", values=metric)
        table = table[[s for s in SCORER_COLORS if s in table.columns]]
        table.plot.bar(ax=axis, color=[SCORER_COLORS[s] for s in table.columns], legend=axis is axes[0][0], rot=30)
        axis.set(title=kind, xlabel="", ylabel=metric)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(f"{metric} per segment")
    return _png(figure)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def markdown_images(images: dict[str, bytes]) -> str:
    """Markdown the Dagster UI renders with the images inline."""
    return "\n\n".join(f"**{title}**\n\n![{title}]({data_uri(png)})" for title, png in images.items())


def html_report(title: str, summary: list[str], tables: dict[str, pd.DataFrame], images: dict[str, bytes]) -> str:
    """One file with everything inside (images as data URIs): it can be mailed or archived."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f5f5f5}img{max-width:100%;margin:1em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>",
    ]
    for caption, png in images.items():
        parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' src='{data_uri(png)}'>")
    for caption, table in tables.items():
        parts.append(f"<h2>{html.escape(caption)}</h2>" + table.round(4).to_html(index=False, border=0))
    parts.append("</body></html>")
    return "\n".join(parts)
