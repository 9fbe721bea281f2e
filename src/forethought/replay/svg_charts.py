"""Small inline SVG charts for the backtest page: bars (stacked or grouped), horizontal stacked bars,
lines and intervals. Nothing is fetched and nothing runs: each chart is one ``<svg>`` element.

Every text and attribute value goes through :class:`markupsafe.Markup` formatting, which escapes it, so
names read from data (playbooks, reasons, file names) can never become markup. Each drawn shape has the
class ``mark``; the page's check counts the marks that have a size once the browser has laid them out.

>>> svg = bar_chart("t", ["a<b"], {"<script>": [2]})
>>> "<script>" in svg, "&lt;script&gt;" in svg, svg.count('class="mark"')
(False, True, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup

WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 64
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


def color(i: int) -> str:
    """The ``i``-th series colour (the palette repeats after ten)."""
    return PALETTE[i % len(PALETTE)]


def colours_for(names: Sequence[str]) -> dict[str, str]:
    """One colour per name (the first occurrence counts), so a playbook has the same colour in every chart.

    >>> colours_for(["b", "a", "b"]) == {"b": PALETTE[0], "a": PALETTE[1]}
    True
    """
    return {name: color(i) for i, name in enumerate(dict.fromkeys(names))}


def _pick(colors: Mapping[str, str] | None, name: str, i: int) -> str:
    return (colors or {}).get(name) or color(i)


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``.

    >>> nice_ticks(7)
    [0.0, 2.0, 4.0, 6.0, 8.0]
    >>> nice_ticks(1.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [float(round(i * step, 10)) for i in range(int(math.ceil(high / step - 1e-9)) + 1)]


def _label(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.3g}"


def _frame(name: str, title: str, body: Sequence[Markup], height: int = HEIGHT) -> Markup:
    return Markup('<svg class="chart" data-chart="{}" role="img" aria-label="{}" viewBox="0 0 {} {}" '
                  'width="{}" height="{}" preserveAspectRatio="xMinYMin meet"><title>{}</title>{}</svg>').format(
        name, title, WIDTH, height, WIDTH, height, title, Markup("").join(body))


def _y_axis(ticks: list[float], plot_h: float, label: str, fmt: str = "") -> list[Markup]:
    top = ticks[-1] or 1.0
    parts = []
    for t in ticks:
        py = TOP + plot_h - plot_h * t / top
        text = f"{t:{fmt}}" if fmt else _label(t)
        parts.append(Markup('<line class="grid" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>'
                            '<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(
            LEFT, WIDTH - RIGHT, py, py, LEFT - 6, py + 4, text))
    parts.append(Markup('<text class="axis" transform="translate(14,{:.1f}) rotate(-90)" text-anchor="middle">{}'
                        '</text>').format(TOP + plot_h / 2, label))
    return parts


def _legend(names: Sequence[str], y: float, colors: Mapping[str, str] | None = None) -> list[Markup]:
    parts, x = [], LEFT
    for i, name in enumerate(names):
        shown = name if len(name) <= 40 else name[:39] + "…"
        parts.append(Markup('<rect class="key" x="{}" y="{:.1f}" width="10" height="10" fill="{}"/>'
                            '<text class="legend" x="{}" y="{:.1f}">{}</text>').format(
            x, y, _pick(colors, name, i), x + 14, y + 9, shown))
        x += 24 + 7 * len(shown)
        if x > WIDTH - 120 and i + 1 < len(names):
            x, y = LEFT, y + 16
    return parts


def bar_chart(title: str, categories: Sequence[str], series: Mapping[str, Sequence[float]], *, stacked: bool = True,
              y_label: str = "count", name: str = "bars", fmt: str = "", colors: Mapping[str, str] | None = None,
              ) -> Markup:
    """Vertical bars per category, one colour per series, stacked or side by side."""
    legend_rows = 1 + len(series) // 6
    height = HEIGHT + 16 * legend_rows
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    totals = [sum(values[i] for values in series.values()) if stacked else max(values[i] for values in series.values())
              for i in range(len(categories))] if series else []
    ticks = nice_ticks(max(totals, default=0.0))
    top = ticks[-1] or 1.0
    slot = plot_w / max(len(categories), 1)
    bar = slot * 0.8 / (1 if stacked else max(len(series), 1))
    parts = _y_axis(ticks, plot_h, y_label, fmt)
    widest = max((min(len(c), 16) for c in categories), default=1)
    every = max(1, math.ceil(len(categories) * (6.5 * widest + 12) / plot_w))  # labels that do not overlap
    for i, category in enumerate(categories):
        x0, base = LEFT + i * slot + slot * 0.1, 0.0
        for j, (key, values) in enumerate(series.items()):
            value = values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            x = x0 if stacked else x0 + j * bar
            y = TOP + plot_h - plot_h * base / top - h
            parts.append(Markup('<rect class="mark" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
                                '<title>{}: {}</title></rect>').format(
                x, y, max(bar, 1.0), h, _pick(colors, key, j), f"{key} · {category}", _label(value)))
            base += value if stacked else 0.0
        if i % every == 0:
            parts.append(Markup('<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
                LEFT + (i + 0.5) * slot, TOP + plot_h + 16, category if len(category) <= 16 else category[:15] + "…"))
    parts += _legend(list(series), HEIGHT - 28, colors)
    return _frame(name, title, parts, height)


def hbar_chart(title: str, rows: Mapping[str, Mapping[str, float]], *, name: str = "hbars",
               x_label: str = "count", colors: Mapping[str, str] | None = None) -> Markup:
    """One horizontal stacked bar per row (``{row: {series: value}}``), e.g. suppressions per reason."""
    keys = sorted({k for parts in rows.values() for k in parts})
    row_h, label_w = 26, 200
    height = TOP + row_h * max(len(rows), 1) + 56 + 16 * (1 + len(keys) // 6)
    plot_w = WIDTH - label_w - RIGHT
    ticks = nice_ticks(max((sum(r.values()) for r in rows.values()), default=0.0))
    top = ticks[-1] or 1.0
    parts: list[Markup] = []
    bottom = TOP + row_h * len(rows)
    for t in ticks:
        x = label_w + plot_w * t / top
        parts.append(Markup('<line class="grid" x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}"/>'
                            '<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
            x, x, TOP, bottom, x, bottom + 14, _label(t)))
    parts.append(Markup('<text class="axis" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
        label_w + plot_w / 2, bottom + 32, x_label))
    for i, (row, values) in enumerate(rows.items()):
        y, base = TOP + i * row_h + 4, 0.0
        parts.append(Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(
            label_w - 6, y + 13, row if len(row) <= 28 else row[:27] + "…"))
        for key in keys:
            value = values.get(key, 0)
            if value <= 0:
                continue
            w = plot_w * value / top
            parts.append(Markup('<rect class="mark" x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}">'
                                '<title>{}: {}</title></rect>').format(
                label_w + plot_w * base / top, y, max(w, 1.0), row_h - 8, _pick(colors, key, keys.index(key)),
                f"{row} · {key}", _label(value)))
            base += value
    parts += _legend(keys, bottom + 42, colors)
    return _frame(name, title, parts, height)


def line_chart(title: str, series: Mapping[str, Sequence[tuple[float, float]]], *, x_label: str, y_label: str,
               reference: float | None = None, name: str = "lines") -> Markup:
    """Lines over [0, 1] × [0, 1] (e.g. precision against recall); ``reference`` draws a dashed
    horizontal line (a random score's precision)."""
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    ticks = nice_ticks(1.0)
    parts = _y_axis(ticks, plot_h, y_label, ".1f")
    for t in ticks:
        parts.append(Markup('<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{:.1f}</text>').format(
            LEFT + plot_w * t, TOP + plot_h + 16, t))
    parts.append(Markup('<text class="axis" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
        LEFT + plot_w / 2, TOP + plot_h + 36, x_label))
    if reference is not None:
        y = TOP + plot_h * (1 - reference)
        parts.append(Markup('<line class="reference" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}">'
                            '<title>random score: {:.3f}</title></line>').format(LEFT, WIDTH - RIGHT, y, y, reference))
    for i, (key, points) in enumerate(series.items()):
        if not points:
            continue
        path = " ".join(f"{'M' if k == 0 else 'L'}{LEFT + plot_w * x:.1f},{TOP + plot_h * (1 - y):.1f}"
                        for k, (x, y) in enumerate(points))
        parts.append(Markup('<path class="mark" d="{}" fill="none" stroke="{}" stroke-width="2"><title>{}</title>'
                            '</path>').format(path, color(i), key))
    parts += _legend(list(series), HEIGHT - 20)
    return _frame(name, title, parts)


def interval_chart(title: str, rows: Sequence[tuple[str, float, float, float]], *, name: str = "intervals",
                   x_label: str = "lift", colors: Mapping[str, str] | None = None) -> Markup:
    """One estimate with its interval per row (``(label, estimate, low, high)``) around a zero line."""
    row_h, label_w = 30, 200
    height = TOP + row_h * max(len(rows), 1) + 48
    plot_w = WIDTH - label_w - RIGHT - 10
    span = max([abs(v) for _, e, lo, hi in rows for v in (e, lo, hi)] + [0.05])
    span = nice_ticks(span, 2)[-1]
    scale = lambda v: label_w + plot_w * (v + span) / (2 * span)  # noqa: E731
    bottom = TOP + row_h * len(rows)
    parts: list[Markup] = []
    for t in (-span, -span / 2, 0.0, span / 2, span):
        parts.append(Markup('<line class="{}" x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}"/>'
                            '<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{:+.0%}</text>').format(
            "zero" if t == 0 else "grid", scale(t), scale(t), TOP, bottom, scale(t), bottom + 14, t))
    parts.append(Markup('<text class="axis" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
        label_w + plot_w / 2, bottom + 32, x_label))
    for i, (label, estimate, low, high) in enumerate(rows):
        y = TOP + i * row_h + row_h / 2
        parts.append(Markup('<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{}</text>'
                            '<g class="mark"><title>{}: {:+.1%} (95 % CI {:+.1%} to {:+.1%})</title>'
                            '<line class="whisker" x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}"/>'
                            '<circle cx="{:.1f}" cy="{:.1f}" r="5" fill="{}"/></g>').format(
            label_w - 6, y + 4, label if len(label) <= 28 else label[:27] + "…", label, estimate, low, high,
            scale(low), scale(high), y, y, _pick(colors, label, i), scale(estimate), y, _pick(colors, label, i)))
    return _frame(name, title, parts, height)
