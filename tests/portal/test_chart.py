"""The usage chart: stacked SVG bars, escaped labels, readable axes."""

from __future__ import annotations

import re

import pytest

from portal import chart
from portal.formatting import usd


@pytest.mark.parametrize(("top", "step"), [(1, 1), (4, 1), (5, 2), (9, 5), (40, 10), (41, 20), (7_750_000, 2_000_000),
                                           (12_500_000, 5_000_000), (100, 25), (81_000, 25_000), (101, 50)])
def test_axis_steps_are_round_numbers(top: int, step: int) -> None:
    """At most four steps of 1, 2, 2.5 or 5 times a power of ten reach the tallest bar."""
    assert step == chart.nice_step(top)
    assert step * chart.TICKS >= top


def test_bars_stack_per_day_and_every_label_is_escaped() -> None:
    """One rect per non-zero value; model names cannot inject markup."""
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    series = [chart.Series("gpt-test", [100, 0, 300]), chart.Series("<script>x</script>", [50, 50, 0])]
    svg = str(chart.stacked_bars("c", "Cost per day", days, series, usd, chart.colours([s.model for s in series])))
    assert 4 == len(re.findall(r'<rect class="bar"', svg))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg


def test_stacked_segments_sit_on_each_other() -> None:
    """The second model's segment starts where the first one's ends."""
    svg = str(chart.stacked_bars("c", "t", ["2026-11-01"], [chart.Series("a", [10]), chart.Series("b", [30])],
                                 str, {"a": "#000", "b": "#111"}))
    (y1, h1), (y2, h2) = [(float(y), float(h)) for y, h in re.findall(r'y="([\d.]+)" width="[\d.]+" height="([\d.]+)"',
                                                                      svg)]
    assert abs(y1 - (y2 + h2)) < 0.01 and abs(h2 - 3 * h1) < 0.01


def test_an_empty_range_says_so() -> None:
    """No usage: a chart with a message, not an error."""
    svg = str(chart.stacked_bars("c", "t", ["2026-11-01"], [], usd, {}))
    assert "No usage in this range" in svg and "<rect" not in svg


@pytest.mark.parametrize(("n", "shown"), [(0, "0"), (950, "950"), (1_000, "1k"), (12_345, "12.3k"),
                                          (3_500_000, "3.5M"), (2_000_000_000, "2G")])
def test_token_axis_labels_are_compact(n: int, shown: str) -> None:
    assert shown == chart.compact(n)
