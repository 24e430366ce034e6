"""Geometry of the usage charts, drawn as inline SVG by templates/_charts.html: no
script and no chart library, so they render anywhere, scale to a phone's width
(viewBox) and print."""

import math
from dataclasses import dataclass

from mediagate.web.usage_stats import Day, ModelUsage

WIDTH, HEIGHT = 640, 220
LEFT, BOTTOM, TOP = 44, 28, 12
"""Room for the y-axis labels, the date labels and the top label."""


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class DayChart:
    bars: list[Bar]
    ticks: list[tuple[float, int]]
    """(y, value) of the horizontal grid lines."""
    dates: list[tuple[float, str]]
    """(x, label) under the bars, thinned so they never overlap."""
    total: int
    width: int = WIDTH
    height: int = HEIGHT


def nice_ceiling(value: int) -> int:
    """The axis top: 4, 8, 20, 40, 80, 200, ... at least `value`, so the five grid lines
    (quarters) fall on whole credits."""
    power = 1
    while True:
        for m in (4, 8, 20):
            if m * power >= value:
                return m * power
        power *= 10


def day_chart(days: list[Day]) -> DayChart:
    top = nice_ceiling(max((d.credits for d in days), default=0))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        h = plot_h * d.credits / top
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.15, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(slot * 0.7, 2),
                height=round(h, 2),
                label=d.day.isoformat(),
                value=d.credits,
            )
        )
    ticks = [(round(TOP + plot_h * (1 - k / 4), 2), top * k // 4) for k in range(5)]
    every = max(1, math.ceil(len(days) / 7))
    dates = [
        (round(LEFT + i * slot + slot / 2, 2), d.day.strftime("%b %d"))
        for i, d in enumerate(days)
        if i % every == 0
    ]
    return DayChart(bars, ticks, dates, sum(d.credits for d in days))


@dataclass(frozen=True)
class ModelRow:
    model: str
    tasks: int
    width_pct: float
    """The bar's length relative to the busiest model."""
    success_pct: int | None


def model_rows(usage: list[ModelUsage]) -> list[ModelRow]:
    busiest = max((u.tasks for u in usage), default=1)
    return [
        ModelRow(
            u.model,
            u.tasks,
            round(100 * u.tasks / busiest, 1),
            None if u.success_rate is None else round(100 * u.success_rate),
        )
        for u in usage
    ]
