"""Charts as inline SVG, drawn on the server: no script, no network, readable by screen readers
(every chart has a <title> and a <desc>, every bar and point a <title> with its value).

Pure functions of their data: tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from markupsafe import Markup

WIDTH = 640
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40
_COLOURS = ("#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700")


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: Sequence[tuple[Decimal, Decimal]]  # (x, y)


def nice_ceiling(value: Decimal) -> Decimal:
    """The axis top: 1, 2, 2.5 or 5 times a power of ten, at least `value` (and above zero)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        top = step.scaleb(exponent)
        if top >= value:
            return top.normalize()
    return Decimal(10).scaleb(exponent)  # pragma: no cover - the loop always returns


def _fmt(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text


def _ticks(top: Decimal, count: int = 4) -> list[Decimal]:
    return [top * i / count for i in range(count + 1)]


def _frame(title: str, description: str, body: list[str], y_top: Decimal, unit: str) -> Markup:
    plot_h = HEIGHT - _TOP - _BOTTOM
    grid: list[str] = []
    for tick in _ticks(y_top):
        y = _TOP + plot_h - float(tick / y_top) * plot_h
        grid.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                    'class="grid"/>')
        grid.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                    f'{escape(_fmt(tick))}</text>')
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
        f'<text x="4" y="{_TOP - 4}" class="unit">{escape(unit)}</text>'
        + "".join(grid) + "".join(body) + "</svg>"
    )
    return Markup(svg)


def bar_chart(
    points: Sequence[tuple[str, Decimal]], *, title: str, unit: str
) -> Markup:
    """One bar per (label, value); negative values are drawn as zero."""
    values = [max(v, Decimal(0)) for _, v in points]
    top = nice_ceiling(max(values, default=Decimal(0)))
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    body: list[str] = []
    slot = plot_w / max(len(points), 1)
    every = max(1, len(points) // 12)  # at most about twelve labels under the axis
    for i, ((label, _), value) in enumerate(zip(points, values, strict=True)):
        h = float(value / top) * plot_h
        x = _LEFT + i * slot + slot * 0.15
        y = _TOP + plot_h - h
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'class="bar"><title>{escape(label)}: {escape(_fmt(value))} {escape(unit)}'
            "</title></rect>")
        if i % every == 0:
            body.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - _BOTTOM + 16}" '
                        f'text-anchor="middle" class="tick">{escape(label)}</text>')
    description = "; ".join(f"{label}: {_fmt(v)} {unit}" for (label, _), v in
                            zip(points, values, strict=True)) or "–"
    return _frame(title, description, body, top, unit)


def line_chart(
    series: Sequence[Series], *, title: str, x_label: str, y_label: str
) -> Markup:
    """Lines through each series' (x, y) points, on shared axes starting at zero."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_top = nice_ceiling(max(xs, default=Decimal(0)))
    y_top = nice_ceiling(max(ys, default=Decimal(0)))
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    body: list[str] = []
    for tick in _ticks(x_top):
        x = _LEFT + float(tick / x_top) * plot_w
        body.append(f'<text x="{x:.1f}" y="{HEIGHT - _BOTTOM + 16}" text-anchor="middle" '
                    f'class="tick">{escape(_fmt(tick))}</text>')
    body.append(f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 4}" text-anchor="end" class="unit">'
                f"{escape(x_label)}</text>")
    for n, s in enumerate(series):
        colour = _COLOURS[n % len(_COLOURS)]
        coords = [(_LEFT + float(x / x_top) * plot_w, _TOP + plot_h - float(y / y_top) * plot_h)
                  for x, y in s.points]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                    f'stroke-width="2" class="line"><title>{escape(s.label)}</title></polyline>')
        body.append(f'<text x="{_LEFT + 8}" y="{_TOP + 14 + 14 * n}" fill="{colour}" '
                    f'class="legend">{escape(s.label)}</text>')
    description = "; ".join(
        f"{s.label}: " + ", ".join(f"{_fmt(x)} → {_fmt(y)}" for x, y in s.points[:50])
        for s in series) or "–"
    return _frame(title, description, body, y_top, y_label)
