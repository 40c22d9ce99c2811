"""Charts drawn on the server as plain SVG geometry: no script, no charting library.

A chart is a list of labelled bars whose lengths are computed here; the template draws
them as ``<rect>`` elements inside an ``<svg role="img">`` with a title and a text
description, and the page shows the same numbers in a table beside it, so a screen
reader loses nothing. Colours come from CSS classes, which the strict
Content-Security-Policy allows (an external stylesheet), unlike inline ``style``.
"""

from __future__ import annotations

from dataclasses import dataclass

CHART_WIDTH = 560
LABEL_WIDTH = 120
VALUE_WIDTH = 180
BAR_HEIGHT = 22
BAR_GAP = 12
PLOT_WIDTH = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value_text: str
    fraction: float  # 0..1 of the plot width
    css: str
    y: int

    @property
    def width(self) -> float:
        return round(PLOT_WIDTH * self.fraction, 1)

    @property
    def text_y(self) -> int:
        return self.y + BAR_HEIGHT // 2 + 5


@dataclass(frozen=True, slots=True)
class BarChart:
    title: str
    description: str
    bars: tuple[Bar, ...]
    track: bool  # draw the 100 % track behind each bar (a gauge against a cap)

    width: int = CHART_WIDTH
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    bar_height: int = BAR_HEIGHT

    @property
    def height(self) -> int:
        return max(1, len(self.bars)) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP

    @property
    def value_x(self) -> int:
        return LABEL_WIDTH + PLOT_WIDTH + 8


def bar_chart(
    title: str,
    rows: list[tuple[str, float, str, str]],
    *,
    maximum: float | None = None,
    track: bool = False,
) -> BarChart:
    """Bars from ``(label, value, value_text, css_class)`` rows, scaled to ``maximum``
    (default: the largest value; a chart of zeros draws empty bars, not a division error)."""
    top = maximum if maximum is not None else max((v for _, v, _, _ in rows), default=0.0)
    bars = tuple(
        Bar(
            label=label,
            value_text=text,
            fraction=min(1.0, value / top) if top > 0 else 0.0,
            css=css,
            y=BAR_GAP + i * (BAR_HEIGHT + BAR_GAP),
        )
        for i, (label, value, text, css) in enumerate(rows)
    )
    description = "; ".join(f"{label}: {text}" for label, _, text, _ in rows) or "no data"
    return BarChart(title=title, description=description, bars=bars, track=track)


def gauge_chart(title: str, rows: list[tuple[str, float, float, str, str]]) -> BarChart:
    """Each row its own scale: ``(label, used, cap, value_text, css)``, drawn as the share
    of its cap used (a cap of 0 or less means unlimited: an empty track)."""
    bars = tuple(
        Bar(
            label=label,
            value_text=text,
            fraction=min(1.0, used / cap) if cap > 0 else 0.0,
            css=css,
            y=BAR_GAP + i * (BAR_HEIGHT + BAR_GAP),
        )
        for i, (label, used, cap, text, css) in enumerate(rows)
    )
    description = "; ".join(f"{label}: {text}" for label, _, _, text, _ in rows) or "no data"
    return BarChart(title=title, description=description, bars=bars, track=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover - the loop always returns
