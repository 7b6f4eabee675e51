"""The usage chart: stacked bars per day, one colour per model, as inline SVG.

Rendered on the server (no script, no network); colours are presentation
attributes, so the page's Content-Security-Policy needs no inline styles. Each
bar segment has a ``<title>`` (a tooltip and what a screen reader announces);
the table under the chart carries the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 76, 12, 12, 34
TICKS = 4


def colours(models: Sequence[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(models))}


def nice_step(top: int, ticks: int = TICKS) -> int:
    """The smallest 1, 2, 2.5 or 5 x 10^k step (integers only) with ``ticks`` steps reaching ``top``."""
    raw = max(-(-top // ticks), 1)
    mag = 10 ** (len(str(raw)) - 1)
    candidates = (mag, 2 * mag, 25 * mag // 10, 5 * mag, 10 * mag) if mag >= 10 else (mag, 2 * mag, 5 * mag, 10 * mag)
    step: int = next(c for c in candidates if c >= raw)
    return step


@dataclass(frozen=True, slots=True)
class Series:
    model: str
    values: Sequence[int]  # one per day


def stacked_bars(chart_id: str, title: str, days: Sequence[str], series: Sequence[Series],
                 fmt: Callable[[int], str], palette: dict[str, str]) -> Markup:
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    top = max(totals, default=0)
    step = nice_step(top) if top > 0 else 1
    ticks = max(-(-top // step), 1)  # as many steps as the tallest bar needs (at most TICKS)
    y_max = step * ticks
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_w / max(len(days), 1)
    bar = max(band * 0.72, 1.0)
    desc = f"{title}, {days[0]} to {days[-1]} (UTC days), stacked by model; total {fmt(sum(totals))}." \
        if days else title
    out = [f'<svg class="chart" id="{chart_id}" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>']
    for k in range(ticks + 1):
        y = TOP + plot_h - plot_h * k / ticks
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d4da" '
                   f'stroke-width="1"/><text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                   f'fill="#444">{escape(fmt(step * k) if top else "0")}</text>')
    label_every = max(1, -(-len(days) // 10))
    for i, day in enumerate(days):
        x = LEFT + band * i + (band - bar) / 2
        y = TOP + plot_h
        for s in series:
            v = s.values[i]
            if v <= 0:
                continue
            h = plot_h * v / y_max
            y -= h
            out.append(f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                       f'fill="{palette.get(s.model, PALETTE[0])}"><title>{escape(day)} {escape(s.model)}: '
                       f'{escape(fmt(v))}</title></rect>')
        if i % label_every == 0:
            out.append(f'<text x="{LEFT + band * i + band / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
                       f'text-anchor="middle" fill="#444">{escape(day[5:])}</text>')
    if not top:
        out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
                   'font-size="14" fill="#666">No usage in this range</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above


def compact(n: int) -> str:
    """Token counts on an axis: 950, 12k, 3.5M."""
    for div, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= div:
            v = n / div
            return f"{v:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)
