"""Draw dashboard.json the way Grafana lays it out, on data from a real Prometheus, into one PNG.

    .venv/bin/python deploy/k8s/components/monitoring/render.py --prometheus http://127.0.0.1:9090 \\
        --from now-15m --scrape-interval 15 -o dashboard.png

Grafana itself cannot be installed here, so this is a renderer of *our* dashboard JSON, not Grafana:
panels sit at their ``gridPos`` (24 columns, 30 px rows, 8 px gaps); rows are section headers; each
target's PromQL goes to ``/api/v1/query_range`` with the variables substituted as Grafana does for
the dashboard's defaults (a multi-value query variable at "All" becomes its ``allValue``;
``$__interval`` is the range over the panel's width in pixels, rounded, at least the data source's
scrape interval; ``$__rate_interval`` is max($__interval + scrape interval, 4 × scrape interval));
series are named by ``legendFormat``; values are formatted by ports of Grafana's unit formatters
(``reqps``, ``percentunit``, ``currencyUSD``, ``s``, ``short``); timeseries panels honour
``fillOpacity`` and normal stacking and have a bottom legend table with the panel's calcs; stat
panels show the ``lastNotNull`` value on their threshold colour over a sparkline. A panel whose
queries return no series (or only NaN) says "No data". Left out: tooltips, descriptions, links, overrides,
transformations, collapsed rows, any panel type but row, timeseries and stat (an error names them).
A query Prometheus refuses stops the render with a non-zero exit naming the panel.

It lives beside the dashboard it draws, outside tokengate's packages: it imports none of them, only
matplotlib (a test dependency); ``demo.py`` beside it feeds it a local stack's data (make dashboard-png).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROW_PX, GAP_PX, WIDTH_PX, HEADER_PX, PAD_PX = 30, 8, 1600, 44, 16  # Grafana's grid: 30 px rows, 8 px gaps
THEME = {"canvas": "#111217", "panel": "#181b1f", "border": "#2c3036", "text": "#ccccdc", "dim": "#8e8e9b",
         "grid": "#25282d"}
NAMED = {"green": "#73BF69", "yellow": "#FADE2A", "blue": "#5794F2", "orange": "#FF9830", "red": "#F2495C",
         "purple": "#B877D9", "dark-green": "#37872D", "dark-yellow": "#E0B400", "dark-blue": "#1F60C4",
         "dark-orange": "#FA6400", "dark-red": "#C4162A", "dark-purple": "#8F3BB8"}
PALETTE = list(NAMED.values())  # Grafana's classic palette (dark theme) starts with these, in this order


class RenderError(Exception):
    """A panel that cannot be drawn: its query failed, or it uses what this renderer does not know."""


# -- Grafana's unit formatters (packages/grafana-data/src/valueFormats), ported ---------------------

def _js_str(x: float) -> str:
    return str(int(x)) if x == int(x) and abs(x) < 1e21 else repr(x)


def _auto_decimals(value: float) -> int:
    if value == 0 or value % 1 == 0:
        return 0
    dec = -math.floor(math.log10(abs(value))) + 1
    if value / 10.0 ** -dec > 2.25:
        dec += 1
    return max(0, dec)


def to_fixed(value: float, decimals: int | None = None) -> str:
    """Grafana's toFixed: ``decimals`` None picks about three significant digits."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-∞" if value < 0 else "∞")
    if decimals is None:
        decimals = _auto_decimals(value)
    if value == 0:
        return f"{0:.{max(decimals, 0)}f}"
    factor = 10 ** max(0, decimals) if decimals else 1
    text = _js_str(math.floor(value * factor + 0.5) / factor)
    if "e" in text:
        return text
    precision = len(text) - text.index(".") - 1 if "." in text else 0
    if precision < decimals:
        return (text if precision else text + ".") + str(factor)[1:decimals - precision + 1]
    return text


def _scaled(factor: int, units: Sequence[str], value: float, decimals: int | None) -> tuple[str, str]:
    if not math.isfinite(value):
        return to_fixed(value), ""
    index = math.floor(math.log10(abs(value)) / math.log10(factor)) if value else 0
    index = min(max(index, 0), len(units) - 1)
    return to_fixed(value / factor ** index, decimals), units[index]


def _seconds(value: float, decimals: int | None) -> str:
    for limit, scale, suffix in ((1e-6, 1e9, "ns"), (1e-3, 1e6, "µs"), (1, 1e3, "ms"), (60, 1, "s"),
                                 (3600, 1 / 60, "min"), (86400, 1 / 3600, "hour"), (31536000, 1 / 86400, "day")):
        if abs(value) < limit:
            return f"{to_fixed(value * scale, decimals)} {suffix}"
    return f"{to_fixed(value / 31536000, decimals)} year"


def format_value(unit: str, value: float, decimals: int | None = None) -> str:
    """``value`` as Grafana shows it in ``unit`` (auto decimals when ``decimals`` is None)."""
    if unit == "percentunit":
        return to_fixed(100 * value, decimals) + "%"
    if unit == "s":
        return "0 s" if value == 0 else _seconds(value, decimals)
    if unit == "reqps":
        text, prefix = _scaled(1000, ["", "K", "M", "B", "T"], value, decimals)
        return f"{text}{prefix} req/s"
    if unit == "currencyUSD":
        text, prefix = _scaled(1000, ["", "K", "M", "B", "T"], abs(value), decimals)
        return f"{'-' if value < 0 else ''}${text}{prefix}"
    if unit == "short":
        text, suffix = _scaled(1000, ["", " K", " Mil", " Bil", " Tri", " Quadr", " Quint", " Sext", " Sept"],
                               value, decimals)
        return text + suffix
    if unit in ("", "none"):
        return to_fixed(value, decimals)
    raise RenderError(f"unit {unit!r} has no formatter here (add it to format_value)")


def tick_label(unit: str, value: float) -> str:
    """An axis tick: the unit's formatter, trailing zeros trimmed ("1.5 s", "500 ms", "5%")."""
    text = re.sub(r"(\.\d*?)0+(?=\D*$)", r"\1", format_value(unit, value, 6))
    return re.sub(r"\.(?=\D*$)", "", text)


# -- variables, intervals, queries ----------------------------------------------------------------

_ROUND_MS = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
             (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
             (210000, 120000), (450000, 300000), (1050000, 600000), (2100000, 1200000), (5400000, 3600000)]


def interval_s(range_s: float, width_px: float, scrape_s: float) -> float:
    """Grafana's $__interval: the range over max data points (the panel's width), rounded, floored at
    the data source's scrape interval (its min interval)."""
    ms = range_s * 1000 / width_px
    rounded = next((r for limit, r in _ROUND_MS if ms < limit), 3600000 * max(1, round(ms / 3600000)))
    return max(rounded / 1000, scrape_s)


def duration(seconds: float) -> str:
    return f"{seconds:g}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"


def variables(dashboard: dict[str, Any], interval: float, scrape_s: float) -> dict[str, str]:
    """What each variable becomes at the dashboard's defaults, longest name first."""
    out = {"__interval": duration(interval), "__rate_interval": duration(max(interval + scrape_s, 4 * scrape_s))}
    for var in dashboard.get("templating", {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if var["type"] == "datasource":
            continue  # picks the data source; never part of a query's text
        if var.get("includeAll") and var.get("allValue") is not None and current in (None, [], "$__all", ["$__all"]):
            out[var["name"]] = var["allValue"]
        elif isinstance(current, str):
            out[var["name"]] = current
        else:
            raise RenderError(f"variable ${var['name']}: no allValue or current value to substitute")
    return dict(sorted(out.items(), key=lambda kv: -len(kv[0])))


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        expr = expr.replace("${" + name + "}", value).replace("[[" + name + "]]", value).replace("$" + name, value)
    return expr


def legend_name(legend_format: str | None, labels: dict[str, str], expr: str) -> str:
    """A series' name: legendFormat with {{label}} filled in; without one, Grafana's name{label="value"}."""
    if legend_format:
        return re.sub(r"\{\{\s*([^}\s]+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend_format)
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return labels.get("__name__", "") + (f"{{{shown}}}" if shown else "") or expr


@dataclass
class Series:
    name: str
    times: list[float]
    values: list[float]

    def last(self) -> float | None:
        return next((v for v in reversed(self.values) if math.isfinite(v)), None)


Fetch = Callable[[str, dict[str, str]], Any]


def http_fetch(base: str) -> Fetch:
    def fetch(path: str, params: dict[str, str]) -> Any:
        url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - the Prometheus we were given
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # Prometheus answers a bad query with 400 and a JSON error
            try:
                body = json.load(exc)
            except ValueError:
                raise RenderError(f"HTTP {exc.code} from {base}") from None
        if body.get("status") != "success":
            raise RenderError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]
    return fetch


def query_panel(panel: dict[str, Any], dashboard: dict[str, Any], fetch: Fetch, start: float, end: float,
                scrape_s: float) -> list[Series]:
    """Every target of ``panel`` over [start, end], at Grafana's step for the panel's width."""
    step = interval_s(end - start, panel["gridPos"]["w"] * _col_px() - GAP_PX, scrape_s)
    values = variables(dashboard, step, scrape_s)
    out = []
    for target in panel.get("targets", []):
        expr = substitute(target["expr"], values)
        params = {"query": expr, "start": str(math.floor(start / step) * step),
                  "end": str(math.floor(end / step) * step), "step": f"{step:g}"}
        try:
            data = fetch("/api/v1/query_range", params)
        except (RenderError, OSError) as exc:
            raise RenderError(f"panel {panel['title']!r}, target {target.get('refId')}: {exc}\n  {expr}") from None
        for result in data["result"]:
            out.append(Series(legend_name(target.get("legendFormat"), result["metric"], expr),
                              [float(t) for t, _ in result["values"]], [float(v) for _, v in result["values"]]))
    return out


# -- drawing --------------------------------------------------------------------------------------

def _col_px() -> float:
    return (WIDTH_PX - GAP_PX * 23) / 24 + GAP_PX


def _pt(px: float) -> float:
    return px * 72 / 100  # the figure is drawn at 100 dpi: one Grafana pixel is one image pixel


def _thresholds_color(panel: dict[str, Any], value: float) -> str:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [{"color": "green"}])
    color: str = steps[0]["color"]
    for step in steps[1:]:
        if step["value"] is not None and value >= step["value"]:
            color = step["color"]
    return NAMED.get(color, color)


def _time_ticks(start: float, end: float) -> list[float]:
    step = next((s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
                 if (end - start) / s <= 6), 86400 * math.ceil((end - start) / 86400 / 6))
    return [t for t in range(math.ceil(start / step) * step, int(end) + 1, step)]


def _on_grid(series: list[Series]) -> tuple[list[float], list[list[float]]]:
    """The series joined on their timestamps (a step's multiples); NaN where one has no point: a gap."""
    grid = sorted({t for s in series for t in s.times})
    return grid, [[dict(zip(s.times, s.values, strict=True)).get(t, math.nan) for t in grid] for s in series]


class Canvas:
    """The figure, addressed in the dashboard's pixels (y down) inside a PAD_PX margin; one pixel of the
    dashboard is one of the PNG."""

    def __init__(self, height: float) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.width, self.height = WIDTH_PX + 2 * PAD_PX, height + 2 * PAD_PX
        self.fig = plt.figure(figsize=(self.width / 100, self.height / 100), dpi=100, facecolor=THEME["canvas"])

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return (x + PAD_PX) / self.width, 1 - (y + PAD_PX) / self.height

    def rect(self, x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        return *self.xy(x, y + h), w / self.width, h / self.height

    def text(self, x: float, y: float, s: str, px: float, **kw: Any) -> None:
        self.fig.text(*self.xy(x, y), s, fontsize=_pt(px), va="center", color=kw.pop("color", None) or THEME["text"],
                      **kw)

    def box(self, x: float, y: float, w: float, h: float, face: str) -> None:
        from matplotlib.patches import Rectangle

        left, bottom, width, height = self.rect(x, y, w, h)
        self.fig.add_artist(Rectangle((left, bottom), width, height, transform=self.fig.transFigure,
                                      facecolor=face, edgecolor=THEME["border"], lw=1, zorder=-1))  # under the axes

    def swatch(self, x: float, y: float, color: str) -> None:
        from matplotlib.lines import Line2D

        (x0, y0), (x1, _) = self.xy(x, y), self.xy(x + 12, y)
        self.fig.add_artist(Line2D([x0, x1], [y0, y0], lw=3, color=color, transform=self.fig.transFigure))


def draw_stat(c: Canvas, panel: dict[str, Any], series: Series, x: float, y: float, w: float, h: float) -> None:
    """colorMode background, graphMode area, reduce lastNotNull: the value on its threshold colour over a
    sparkline (a stat panel with several series shows the first here)."""
    value = series.last()
    assert value is not None
    ax = c.fig.add_axes(c.rect(x + 1, y + h * 0.55, w - 2, h * 0.45 - 1))
    ax.fill_between(series.times, [v if math.isfinite(v) else 0 for v in series.values], color="white", alpha=0.2,
                    lw=0)
    ax.set_xlim(series.times[0], max(series.times[-1], series.times[0] + 1))
    ax.set_ylim(bottom=0)
    ax.axis("off")
    c.text(x + w / 2, y + h / 2 + 4, format_value(panel["fieldConfig"]["defaults"].get("unit", ""), value), 34,
           ha="center", weight="bold", color="white")


def draw_timeseries(c: Canvas, panel: dict[str, Any], series: list[Series], start: float, end: float,
                    x: float, y: float, w: float, h: float) -> None:
    """Lines with fillOpacity, normal stacking, and a legend table below (name, then the legend's calcs,
    as many rows as fit in 42 % of the panel: Grafana would scroll the rest)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    defaults = panel["fieldConfig"]["defaults"]
    unit, custom = defaults.get("unit", ""), defaults.get("custom", {})
    calcs = panel.get("options", {}).get("legend", {}).get("calcs", [])
    rows = min(len(series), max(1, int((h * 0.42 - 18) // 17)))
    legend_px = 18 + 17 * (rows + (rows < len(series)))
    ax = c.fig.add_axes(c.rect(x + 74, y + 30, w - 84, h - 52 - legend_px), facecolor=THEME["panel"])
    grid, columns = _on_grid(series)
    base = [0.0] * len(grid)
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    for i, values in enumerate(columns):
        under = base if stacked else [0.0] * len(grid)
        if stacked:
            base = [b + (v if math.isfinite(v) else 0) for b, v in zip(base, values, strict=True)]
            values = [b if math.isfinite(v) else math.nan for b, v in zip(base, values, strict=True)]
        ax.plot(grid, values, color=PALETTE[i % len(PALETTE)], lw=1.2)
        if custom.get("fillOpacity"):
            ax.fill_between(grid, values, under, where=[math.isfinite(v) for v in values],
                            color=PALETTE[i % len(PALETTE)], alpha=custom["fillOpacity"] / 100, lw=0)
    ax.set_xlim(start, end)
    finite = [v for values in columns for v in values if math.isfinite(v)]
    low, high = ax.get_ylim()  # from zero, as Grafana's soft minimum does, unless a value is below it
    ax.set_ylim(bottom=low if min(finite) < 0 else 0, top=high if max(finite) > 0 else 1)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))  # 0.5 steps, not 0.6
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(unit, v)))
    clock = "%H:%M:%S" if end - start < 3600 else "%H:%M"
    ax.xaxis.set_major_locator(FixedLocator(_time_ticks(start, end)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: time.strftime(clock, time.gmtime(v))))
    ax.tick_params(colors=THEME["dim"], labelsize=_pt(11), length=0)
    ax.grid(color=THEME["grid"], lw=0.8)
    for side in ax.spines.values():
        side.set_visible(False)
    top = y + h - legend_px + 4
    names = {"mean": "Mean", "max": "Max", "min": "Min", "lastNotNull": "Last *", "last": "Last"}
    for j, calc in enumerate(reversed(calcs)):
        c.text(x + w - 10 - 80 * j, top, names.get(calc, calc), 11, ha="right", color=THEME["dim"])
    for i, s in enumerate(series[:rows]):
        row_y = top + 17 * (i + 1)
        c.swatch(x + 8, row_y, PALETTE[i % len(PALETTE)])
        c.text(x + 26, row_y, s.name[:48], 11)
        for j, calc in enumerate(reversed(calcs)):
            c.text(x + w - 10 - 80 * j, row_y, _calc(calc, s, unit), 11, ha="right")
    if rows < len(series):
        c.text(x + 26, top + 17 * (rows + 1), f"… {len(series) - rows} more series", 11, color=THEME["dim"])


def render(dashboard: dict[str, Any], fetch: Fetch, start: float, end: float, scrape_s: float,
           out: Path) -> list[str]:
    """Draw the whole dashboard into ``out``; the titles of the panels that had no data."""
    panels = dashboard["panels"]
    c = Canvas(HEADER_PX + max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) * (ROW_PX + GAP_PX))
    span = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start))} to {time.strftime('%H:%M:%S', time.gmtime(end))}"
    c.text(8, 16, dashboard["title"], 18, weight="bold")
    c.text(8, 34, f"namespace: All    {span} UTC    drawn from dashboard.json by render.py (matplotlib), not by "
           "Grafana", 11, color=THEME["dim"])
    empty = []
    for panel in panels:
        g = panel["gridPos"]
        x, y = g["x"] * _col_px(), HEADER_PX + g["y"] * (ROW_PX + GAP_PX)
        w, h = g["w"] * _col_px() - GAP_PX, g["h"] * (ROW_PX + GAP_PX) - GAP_PX
        if panel["type"] == "row":
            c.text(x, y + h / 2, "▾ " + panel["title"], 15, weight="bold")
            continue
        if panel["type"] not in ("timeseries", "stat"):
            raise RenderError(f"panel {panel['title']!r}: type {panel['type']!r} is not drawn here")
        series = query_panel(panel, dashboard, fetch, start, end, scrape_s)
        has_data = any(s.last() is not None for s in series)  # not: no series, or nothing but NaN
        stat = panel["type"] == "stat" and has_data and series[0].last() is not None
        face = _thresholds_color(panel, series[0].last() or 0) if stat else THEME["panel"]
        c.box(x, y, w, h, face)
        c.text(x + 8, y + 15, panel["title"], 13, weight="bold", color="white" if stat else None)
        if not has_data:
            empty.append(panel["title"])
            c.text(x + w / 2, y + h / 2 + 8, "No data", 16, ha="center", color=THEME["dim"])
        elif stat:
            draw_stat(c, panel, series[0], x, y, w, h)
        else:
            draw_timeseries(c, panel, series, start, end, x, y, w, h)
    c.fig.savefig(out, facecolor=THEME["canvas"])
    import matplotlib.pyplot as plt

    plt.close(c.fig)
    return empty


def _calc(calc: str, s: Series, unit: str) -> str:
    finite = [v for v in s.values if math.isfinite(v)]
    if not finite:
        return "-"
    value = {"mean": sum(finite) / len(finite), "max": max(finite), "min": min(finite)}.get(calc, finite[-1])
    return format_value(unit, value)


def parse_time(value: str, now: float) -> float:
    """``now``, ``now-15m`` (s, m, h, d), a Unix time, or an ISO 8601 time in UTC."""
    if m := re.fullmatch(r"now(?:-(\d+)([smhd]))?", value):
        return now - (int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if m.group(1) else 0)
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    import datetime as dt

    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument("--dashboard", type=Path, default=HERE / "dashboard.json")
    p.add_argument("--from", dest="start", help="default: the dashboard's time.from (now-1h)")
    p.add_argument("--to", dest="end", help="default: the dashboard's time.to (now)")
    p.add_argument("--scrape-interval", type=float, default=15,
                   help="seconds; the data source's scrape interval (Grafana's default: 15)")
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    now = time.time()
    start = parse_time(args.start or dashboard["time"]["from"], now)
    end = parse_time(args.end or dashboard["time"]["to"], now)
    try:
        empty = render(dashboard, http_fetch(args.prometheus), start, end, args.scrape_interval, args.out)
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    print(f"render.py: wrote {args.out}; panels with no data: {', '.join(empty) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
