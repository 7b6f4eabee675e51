"""deploy/k8s/components/monitoring/render.py draws the real dashboard.json: Grafana's unit formatters,
its variables and intervals, legend names; and the whole render against a real Prometheus (Debian's
``prometheus``) whose TSDB holds a few series backfilled with ``promtool tsdb create-blocks-from``."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.monitoring import DASHBOARD, dashboard
from tokengate.procs import free_port


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard_render", DASHBOARD.with_name("render.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


render = _load()


@pytest.mark.parametrize(("unit", "value", "decimals", "shown"), [
    ("currencyUSD", 1532.82, 2, "$1.53K"),  # Grafana's own valueFormats.test.ts case
    ("currencyUSD", 0.42, None, "$0.420"),
    ("currencyUSD", -3, None, "-$3"),
    ("reqps", 12.345, None, "12.3 req/s"),
    ("reqps", 1500, None, "1.50K req/s"),
    ("percentunit", 0.0123, None, "1.23%"),
    ("percentunit", 0.5, None, "50%"),
    ("s", 0.25, None, "250 ms"),
    ("s", 1.5, None, "1.50 s"),
    ("s", 0, None, "0 s"),
    ("s", 0.0004, None, "400 µs"),
    ("s", 90, None, "1.50 min"),
    ("short", 98765, None, "98.8 K"),
    ("short", 3, None, "3"),
    ("short", 2_500_000, None, "2.50 Mil"),
], ids=lambda v: str(v))
def test_values_are_formatted_as_grafana_formats_the_unit(unit: str, value: float, decimals: int | None,
                                                          shown: str) -> None:
    """Ports of Grafana's formatters: about three significant digits unless decimals are given."""
    assert shown == render.format_value(unit, value, decimals)


@pytest.mark.parametrize(("value", "decimals", "shown"), [
    (100, None, "100"), (100.4, None, "100"), (100.5, None, "101"), (100, 1, "100.0"), (100.37, 1, "100.4"),
    (100.4, 2, "100.40"), (186.123, -2, "186"), (float("nan"), None, "NaN"),
])
def test_to_fixed_matches_grafanas_own_tests(value: float, decimals: int | None, shown: str) -> None:
    """The cases of Grafana's valueFormats.test.ts for toFixed."""
    assert shown == render.to_fixed(value, decimals)


@pytest.mark.parametrize(("unit", "value", "shown"), [
    ("s", 0.5, "500 ms"), ("s", 1.5, "1.5 s"), ("percentunit", 0.05, "5%"), ("currencyUSD", 1.5, "$1.5"),
    ("short", 2000, "2 K"), ("reqps", 0, "0 req/s"), ("short", 10, "10"),
])
def test_axis_ticks_drop_trailing_zeros(unit: str, value: float, shown: str) -> None:
    assert shown == render.tick_label(unit, value)


def test_an_unknown_unit_is_an_error_not_a_guess() -> None:
    with pytest.raises(render.RenderError, match="bytes"):
        render.format_value("bytes", 1)


@pytest.mark.parametrize(("range_s", "width", "scrape", "interval", "rate"), [
    (3600, 528, 15, 15, "60s"),  # Grafana's default scrape interval: $__rate_interval is a minute
    (180, 528, 5, 5, "20s"),  # make dashboard-png: 5 s scrapes
    (86400, 528, 15, 120, "135s"),  # a day over 528 px: 164 s rounded to 2 min
    (600, 1000, 0.5, 0.5, "2s"),
])
def test_intervals_follow_grafana(range_s: float, width: float, scrape: float, interval: float, rate: str) -> None:
    """$__interval is the range over the panel's pixels, rounded, at least the scrape interval;
    $__rate_interval is max($__interval + scrape, 4 x scrape)."""
    assert interval == render.interval_s(range_s, width, scrape)
    assert rate == render.variables(dashboard(), interval, scrape)["__rate_interval"]


def test_every_query_of_the_dashboard_is_left_without_variables() -> None:
    """At the defaults ($namespace: All, i.e. its allValue .*) no $ remains in any query."""
    values = render.variables(dashboard(), 15, 15)
    exprs = [render.substitute(t["expr"], values) for p in dashboard()["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 25
    assert [] == [e for e in exprs if "$" in e]
    assert 'sum(rate(tokengate_requests_total{namespace=~".*"}[60s]))' in exprs


def test_a_variable_with_nothing_to_substitute_is_an_error() -> None:
    board = {"templating": {"list": [{"name": "env", "type": "custom", "current": {}}]}}
    with pytest.raises(render.RenderError, match=r"\$env"):
        render.variables(board, 15, 15)


@pytest.mark.parametrize(("fmt", "labels", "name"), [
    ("{{model}} {{status}}", {"model": "gpt", "status": "200"}, "gpt 200"),
    ("p99 {{ gen_ai_request_model }}", {"gen_ai_request_model": "m"}, "p99 m"),
    ("{{deployment}}", {}, ""),
    (None, {"__name__": "up", "job": "x"}, 'up{job="x"}'),
    (None, {}, "sum(x)"),
])
def test_series_are_named_by_legend_format(fmt: str | None, labels: dict[str, str], name: str) -> None:
    assert name == render.legend_name(fmt, labels, "sum(x)")


# -- the whole render, against a real Prometheus ---------------------------------------------------

T0 = (int(time.time()) // 86400 - 2) * 86400  # two days ago: backfilled blocks never overlap the head
STEPS = 40  # ten minutes at 15 s


def _openmetrics() -> str:
    """Two models' requests (3 of every 45 a 500), cost, a TTFT histogram, the settler's gauges: an
    OpenMetrics file, each metric's points (a histogram's buckets, count and sum at one time) together."""
    lines = []
    Sample = tuple[str, dict[str, str], float]  # name, labels, growth per step (a gauge: its value)

    def family(name: str, kind: str, metrics: list[list[Sample]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        for metric in metrics:
            for i in range(STEPS):
                for sample, labels, per_step in metric:
                    shown = ",".join(f'{k}="{v}"' for k, v in {"namespace": "test", **labels}.items())
                    lines.append(f"{sample}{{{shown}}} {per_step if kind == 'gauge' else per_step * i} {T0 + 15 * i}")

    ok, failed = {"deployment": "d", "protocol": "openai", "status": "200"}, {"status": "500", "deployment": "d"}
    family("tokengate_requests", "counter", [
        [("tokengate_requests_total", {"model": "gpt", **ok}, 27)], [("tokengate_requests_total", {"model": "gpt", **failed}, 3)],
        [("tokengate_requests_total", {"model": "claude", **ok}, 15)]])
    family("tokengate_cost_nano_usd", "counter", [[("tokengate_cost_nano_usd_total", {"model": "gpt"}, 4e6)]])
    model = {"gen_ai_request_model": "gpt"}
    family("gen_ai_server_time_to_first_token_seconds", "histogram", [[
        *[("gen_ai_server_time_to_first_token_seconds_bucket", {**model, "le": le}, n)
          for le, n in (("0.1", 5), ("0.5", 20), ("1.0", 27), ("+Inf", 30))],
        ("gen_ai_server_time_to_first_token_seconds_count", model, 30),
        ("gen_ai_server_time_to_first_token_seconds_sum", model, 12)]])
    family("tokengate_metering_backlog_events", "gauge", [[("tokengate_metering_backlog_events", {}, 5)]])
    family("tokengate_metering_pending_events", "gauge", [[("tokengate_metering_pending_events", {}, 1)]])
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert exe and promtool, "Debian's prometheus package is needed: apt-get install prometheus (make promtool)"
    work = tmp_path_factory.mktemp("prom")
    (work / "series.om").write_text(_openmetrics())
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "series.om", "tsdb"], cwd=work,
                          capture_output=True, text=True, timeout=60, check=False)
    assert 0 == done.returncode, done.stderr
    (work / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([exe, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
                             f"--web.listen-address={url[7:]}", "--log.level=error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError), urllib.request.urlopen(f"{url}/-/ready", timeout=1):  # noqa: S310 - loopback
                break
            assert proc.poll() is None and time.monotonic() < deadline, "prometheus did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _image(png: Path) -> Any:
    import matplotlib.image

    return matplotlib.image.imread(png)


def _pixel(png: Path, x: float, y: float) -> str:
    """The colour at (x, y) in the dashboard's pixels."""
    r, g, b = (round(c * 255) for c in _image(png)[int(y) + render.PAD_PX, int(x) + render.PAD_PX][:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def _has_color(png: Path, box: tuple[float, float, float, float], color: str) -> bool:
    """Some pixel in the box (x, y, w, h) is close to ``color`` (lines are antialiased)."""
    x, y, w, h = (int(v) + (render.PAD_PX if i < 2 else 0) for i, v in enumerate(box))
    want = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    return any(sum(abs(a - b) for a, b in zip(px[:3], want, strict=True)) < 0.3
               for line in _image(png)[y:y + h, x:x + w] for px in line)


def test_the_dashboard_renders_from_prometheus(prometheus: str, tmp_path: Path) -> None:
    """Every query runs; panels fed by the backfilled series have data, the others say No data; the stat
    panels sit at their gridPos on their threshold colour (error ratio 3/45, above 5 %: red), a timeseries
    panel draws its lines."""
    out = tmp_path / "dashboard.png"
    empty = render.render(dashboard(), render.http_fetch(prometheus), T0 + 60, T0 + 15 * (STEPS - 1), 15, out)
    fed = {"Requests/s", "Error ratio", "Spend (USD/h)", "Metering backlog", "Requests/s by model",
           "Error ratio per deployment", "Spend by model (USD/h)", "Time to first token p50", "Time to first token p99"}
    titles = {p["title"] for p in dashboard()["panels"] if p["type"] != "row"}
    assert titles - fed == set(empty)
    col, row, top = render._col_px(), render.ROW_PX + render.GAP_PX, render.HEADER_PX
    assert render.NAMED["green"] == _pixel(out, 3 * col, top + 1.5 * row)  # Requests/s: x 0, y 1
    assert render.NAMED["red"] == _pixel(out, 9 * col, top + 1.5 * row)  # Error ratio: x 6, y 1
    assert render.THEME["panel"].upper() == _pixel(out, 7 * col, top + 24 * row + 8)  # TTFT p50: x 0, y 24
    plot = (2 * col, top + 6 * row + 32, 5 * col, 120)  # Requests/s by model (x 0, y 6): its plot, not its legend
    assert any(_has_color(out, plot, c) for c in render.PALETTE[:3])
    assert not any(_has_color(out, plot, c) for c in render.PALETTE[3:6])  # three series, three colours


def test_a_query_prometheus_refuses_stops_the_render_naming_the_panel(prometheus: str, tmp_path: Path) -> None:
    board: dict[str, Any] = json.loads(json.dumps(dashboard()))
    board["panels"][1]["targets"][0]["expr"] = "sum(rate(tokengate_requests_total[$__rate_interval])"
    with pytest.raises(render.RenderError, match="panel 'Requests/s', target A: bad_data"):
        render.render(board, render.http_fetch(prometheus), T0, T0 + 600, 15, tmp_path / "x.png")


def test_the_command_exits_non_zero_on_a_refused_query(prometheus: str, tmp_path: Path) -> None:
    board = json.loads(json.dumps(dashboard()))
    board["panels"][2]["targets"][0]["expr"] = "nonsense("
    (tmp_path / "board.json").write_text(json.dumps(board))
    assert 1 == render.main(["--prometheus", prometheus, "--dashboard", str(tmp_path / "board.json"),
                             "--from", str(T0), "--to", str(T0 + 600), "-o", str(tmp_path / "x.png")])
