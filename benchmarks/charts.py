"""SVG charts of the benchmark's headline figures, written without a plotting library (the figures
are a handful of points): results latency against the number of votes, on logarithmic axes, and
votes per second of each design, as bars. ``docs/performance.md`` shows the ones ``make bench``
drew last."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 230, 50, 60
COLOURS = ("#2563eb", "#15803d", "#b45309", "#7c3aed", "#dc2626")
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def line_chart(
    path: Path,
    *,
    title: str,
    x_label: str,
    y_label: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
) -> None:
    """One line per series over logarithmic axes (both), a legend on the right."""
    points = [point for line in series.values() for point in line]
    x_low, x_high = _decades(point[0] for point in points)
    y_low, y_high = _decades(point[1] for point in points)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        fx = (math.log10(x) - x_low) / (x_high - x_low)
        fy = (math.log10(y) - y_low) / (y_high - y_low)
        return LEFT + fx * plot_w, TOP + (1 - fy) * plot_h

    parts = _frame(title, x_label, y_label)
    for decade in range(x_low, x_high + 1):
        x, _ = at(10**decade, 10**y_low)
        parts.append(_line(x, TOP, x, TOP + plot_h, "#e5e7eb"))
        parts.append(_text(x, TOP + plot_h + 18, _number(10**decade), anchor="middle"))
    for decade in range(y_low, y_high + 1):
        _, y = at(10**x_low, 10**decade)
        parts.append(_line(LEFT, y, LEFT + plot_w, y, "#e5e7eb"))
        parts.append(_text(LEFT - 8, y + 4, _number(10**decade), anchor="end"))
    for index, (name, line) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coordinates = [at(x, y) for x, y in sorted(line)]
        joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        parts.append(
            f'<polyline points="{joined}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
        )
        parts += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in coordinates
        ]
        legend_y = TOP + 10 + index * 22
        parts.append(_line(WIDTH - RIGHT + 20, legend_y, WIDTH - RIGHT + 44, legend_y, colour, 2.5))
        parts.append(_text(WIDTH - RIGHT + 50, legend_y + 4, name))
    _write(path, parts)


def bar_chart(path: Path, *, title: str, unit: str, bars: Sequence[tuple[str, float]]) -> None:
    """Horizontal bars, one per design, each labelled with its figure."""
    top = max(value for _, value in bars) or 1.0
    plot_w = WIDTH - LEFT - 160 - 130
    row = 44.0
    height = int(TOP + row * len(bars) + 20)
    parts = _frame(title, "", "", height=height)
    for index, (name, value) in enumerate(bars):
        y = TOP + index * row
        width = plot_w * value / top
        colour = COLOURS[index % len(COLOURS)]
        parts.append(_text(LEFT + 150, y + row / 2 + 4, name, anchor="end"))
        parts.append(
            f'<rect x="{LEFT + 160}" y="{y + 6:.1f}" width="{width:.1f}" height="{row - 12:.1f}" '
            f'fill="{colour}" rx="3"/>'
        )
        parts.append(_text(LEFT + 168 + width, y + row / 2 + 4, f"{value:,.0f} {unit}"))
    _write(path, parts, height=height)


def _decades(values: Iterable[float]) -> tuple[int, int]:
    found = list(values)
    low = math.floor(math.log10(min(found)))
    high = math.ceil(math.log10(max(found)))
    return low, max(high, low + 1)


def _number(value: float) -> str:
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:g}"


def _frame(title: str, x_label: str, y_label: str, height: int = HEIGHT) -> list[str]:
    parts = [
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        _text(WIDTH / 2, 28, title, anchor="middle", size=16, weight="bold"),
    ]
    if x_label:
        parts.append(_text(LEFT + (WIDTH - LEFT - RIGHT) / 2, HEIGHT - 16, x_label, "middle"))
    if y_label:
        middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
        parts.append(
            f'<text x="18" y="{middle:.1f}" {FONT} font-size="12" text-anchor="middle" '
            f'transform="rotate(-90 18 {middle:.1f})">{escape(y_label)}</text>'
        )
    return parts


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, width: float = 1) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="{width}"/>'
    )


def _text(
    x: float,
    y: float,
    text: str,
    anchor: str = "start",
    size: int = 12,
    weight: str = "normal",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" {FONT} font-size="{size}" font-weight="{weight}" '
        f'text-anchor="{anchor}" fill="#111827">{escape(text)}</text>'
    )


def _write(path: Path, parts: list[str], height: int = HEIGHT) -> None:
    body = "\n".join(parts)
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">\n{body}\n</svg>\n'
    )
