"""The benchmark's pure parts: statistics, wrk output, /proc parsing, stream reading, the table.

No timing is asserted anywhere: speed lives in `make bench`.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from bench import gateway, litellm, passthrough, procs, report, stats, wrk
from bench.noop import calibrated, spin
from bench.session import _floor_auth
from bench.sse_server import content_event, frame
from bench.stream_client import ResponseReader
from bench.upstream import agent_request
from core import store


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 100, 5.0),
        (list(map(float, range(1, 101))), 90, 90.1),
        (list(map(float, range(1, 101))), 99, 99.01),
    ],
    ids=["single", "even-median", "unsorted-input", "p0-min", "p100-max", "p90-interpolated", "p99-interpolated"],
)
def test_percentile_interpolates_between_ranks(values: list[float], q: float, expected: float) -> None:
    """Percentiles follow numpy's default linear interpolation."""
    assert expected == pytest.approx(stats.percentile(values, q))


def test_percentile_of_nothing_is_nan_and_bad_q_is_refused() -> None:
    """An empty sample has no percentile; q outside 0..100 is an error."""
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError, match="within 0..100"):
        stats.percentile([1.0], 101)


def test_summary_scales_to_another_unit() -> None:
    """A summary in ns becomes one in µs, count unchanged."""
    s = stats.Summary.of([1000.0, 2000.0, 3000.0]).scaled(1e-3)
    assert (3, 2.0, 3.0) == (s.n, s.p50, s.max)


@pytest.mark.parametrize(
    ("points", "expected"),
    [([(0.0, 10.0), (60.0, 10.0), (120.0, 10.0)], 0.0), ([(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)], 0.1), ([], 0.0)],
    ids=["flat", "rising", "empty"],
)
def test_slope_is_least_squares(points: list[tuple[float, float]], expected: float) -> None:
    """The soak's trend line: MiB per second from (seconds, MiB) samples."""
    assert expected == pytest.approx(stats.slope(points))


def test_ratio_is_none_when_a_side_is_missing() -> None:
    """A ratio with a missing or zero side is not a number to report."""
    assert (2.0, None, None) == (stats.ratio(4, 2), stats.ratio(None, 2), stats.ratio(1, 0))


WRK_TEXT = """Running 10s test @ http://127.0.0.1:8080/v1/chat/completions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.05ms    1.02ms  20.31ms   90.12%
    Req/Sec     7.80k   512.33     8.61k    71.00%
  Latency Distribution
     50%  320.00us
     75%    1.21ms
     90%    2.50ms
     99%    1.02s
  77640 requests in 10.00s, 40.01MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   7761.83
Transfer/sec:      4.00MB
WRK_JSON {"requests":77640,"duration_us":10002000,"bytes":41953280,"errors":{"connect":0,"read":0,"write":0,"status":12,"timeout":1},"latency_us":{"min":41.0,"mean":2050.5,"max":20310.0,"p50":320.0,"p90":2500.0,"p99":1020000.0}}
"""


def test_wrk_json_line_gives_rps_latency_in_ms_and_errors() -> None:
    """The done() hook's line is the result: rate from requests/duration, µs turned into ms."""
    r = wrk.parse_json_line(WRK_TEXT, wrk.Settings(16, 1, 10), cpu_s=1.5)
    assert 77640 == r.requests
    assert 7762.4 == pytest.approx(r.rps, abs=0.1)
    assert {"p50": 0.32, "p90": 2.5, "p99": 1020.0} == {k: r.latency_ms[k] for k in ("p50", "p90", "p99")}
    assert 13 == r.error_count
    assert "wrk -t1 -c16 -d10s --timeout 10s" == r.as_json()["settings"]["tool"]


def test_wrk_without_json_line_is_an_error() -> None:
    """A run whose script printed nothing is not silently zero."""
    with pytest.raises(ValueError, match="WRK_JSON"):
        wrk.parse_json_line("Requests/sec: 1.0\n", wrk.Settings(1, 1, 1))


def test_wrk_text_report_parses_units() -> None:
    """wrk's own layout: us, ms and s latencies, the rate and the non-2xx count."""
    assert {"p50_ms": 0.32, "p75_ms": 1.21, "p90_ms": 2.5, "p99_ms": 1020.0, "non_2xx": 12.0, "rps": 7761.83} == \
        pytest.approx(wrk.parse_text(WRK_TEXT))


def test_lua_script_carries_body_and_headers() -> None:
    """The request is spelled in Lua exactly once; headers are quoted as JSON strings."""
    lua = wrk.lua_script(wrk.Target("http://x/", b'{"a":"b"}', {"Authorization": "Bearer k"}))
    assert 'wrk.body = [====[{"a":"b"}]====]' in lua
    assert 'wrk.headers["Authorization"] = "Bearer k"' in lua
    assert "WRK_JSON" in lua


def test_proc_stat_parse_survives_spaces_in_the_command_name() -> None:
    """utime+stime and ppid are counted after the last ')'."""
    tick = procs._TICK
    text = f"42 (my (odd) name) S 7 42 42 0 -1 4194304 100 0 0 0 {3 * tick} {tick} 0 0 20 0 1 0 1 1 1"
    assert (7, 4.0) == procs.parse_stat(text)


def test_status_field_in_kib() -> None:
    """VmHWM and VmRSS come out of /proc/<pid>/status in KiB."""
    text = "Name:\tpython\nVmHWM:\t   70000 kB\nVmRSS:\t   65000 kB\n"
    assert (70000, 65000, None) == (procs.parse_status_kib(text, "VmHWM"), procs.parse_status_kib(text, "VmRSS"),
                                    procs.parse_status_kib(text, "VmSwap"))


def test_machine_busy_excludes_idle_iowait_and_steal() -> None:
    """Whole-machine busy time counts user, nice, system, irq, softirq only."""
    t = procs._TICK
    text = f"cpu  {t} 0 {t} {10 * t} {t} 0 0 {5 * t} 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n"
    assert 2.0 == procs.parse_proc_stat_busy(text)


def _sse_response(stamps: list[int], split: int) -> list[bytes]:
    body = b"".join(frame(content_event("m", ts)) for ts in stamps) + frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n" + body
    return [raw[i:i + split] for i in range(0, len(raw), split)]


@pytest.mark.parametrize("split", [1, 7, 64, 100_000], ids=["byte-by-byte", "7-bytes", "64-bytes", "whole"])
def test_stream_reader_times_every_chunk_however_bytes_arrive(split: int) -> None:
    """Chunked framing and SSE lines are reassembled; latency = read time - stamped write time."""
    reader = ResponseReader()
    for i, piece in enumerate(_sse_response([1_000_000, 2_000_000, 3_000_000], split)):
        reader.feed(piece, 5_000_000 + i)
    assert reader.done and 200 == reader.status
    assert 3 == len(reader.latencies_ns)
    assert reader.first_event_ns >= 5_000_000
    assert all(lat > 0 for lat in reader.latencies_ns)


def _doc(**fixed: Any) -> dict[str, Any]:
    def run(rps: float, p50: float) -> dict[str, Any]:
        return {"rps": rps, "latency_ms": {"p50": p50, "p90": p50 * 2, "p99": p50 * 3},
                "cpu_per_1k": {"envoy": 0.1}, "errors": {}}

    runs = {sid: {"label": sid, "available": True, "runs": {"1": run(r / 10, p), "16": run(r, p), "64": run(r, p)},
                  "translator_peak_rss_kib": {}} for sid, (r, p) in fixed.items()}
    return {"meta": {}, "fixed": runs,
            "streaming": {"B": {"available": True, "label": "B", "streams": 2, "chunks": 400, "cpu_s": {},
                                "ttft_ms": {"p50": 0.5, "p90": 0.6, "p99": 0.7},
                                "chunk_us": {"p50": 300.0, "p90": 350.0, "p99": 400.0}}}}


def test_goals_compute_ratios_and_added_latency() -> None:
    """C/B, C/N, C/F and C−B come from the c=16/c=64 rates and the c=1 p50s."""
    doc = _doc(B=(8000.0, 0.3), N=(4000.0, 0.4), C=(5000.0, 0.5), F=(100.0, 20.0))
    by_name = {g.measure: g for g in report.goals(doc)}
    assert 1.25 == pytest.approx(by_name["C/N req/s, c=16 (tokengate ÷ its no-op floor)"].value)
    assert 0.1 == pytest.approx(by_name["added p50 at c=1, N−B (the floor)"].value)
    assert 0.625 == pytest.approx(by_name["C/B req/s, c=16"].value)
    assert by_name["C/B req/s, c=16"].met is True
    assert 50 == pytest.approx(by_name["C/F req/s, c=16"].value)
    assert 0.2 == pytest.approx(by_name["added p50 at c=1, C−B"].value)
    assert by_name["streaming: added TTFT p50, C−B"].met is None  # no E-C: not computed, not invented


def test_table_marks_unavailable_scenarios_and_missing_goals() -> None:
    """A scenario that could not run says so; a goal without its inputs is n/a."""
    doc = _doc(B=(8000.0, 0.3), C=(5000.0, 0.5))
    doc["fixed"]["D1"] = {"label": "OpenAI -> Anthropic", "available": False, "reason": "probe answered HTTP 400",
                          "runs": {}}
    text = report.markdown(doc)
    assert "| **D1** OpenAI -> Anthropic | not available yet |" in text
    assert "| C/F req/s, c=16 | – | ≥ 25× | n/a |" in text
    assert "| **E-B** B | 2 × 200 |" in text


RENDERED = """
static_resources:
  listeners:
  - name: http
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          route_config:
            virtual_hosts:
            - routes:
              - match: {prefix: /}
                typed_per_filter_config:
                  tokengate.router: {disabled: true}
          http_filters:
          - name: tokengate.router
          - name: envoy.filters.http.router
  - name: ready
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config: {cluster_min_healthy_percentages: {translator: {value: 1}}}
  clusters:
  - name: translator
  - name: deployment/a
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        http_filters:
        - name: tokengate.upstream
        - name: envoy.filters.http.upstream_codec
"""


def test_passthrough_config_keeps_everything_but_ext_proc() -> None:
    """B's Envoy: no ext_proc filter, override, translator cluster or readiness on it; the rest stays."""
    doc = passthrough.strip_ext_proc(yaml.safe_load(RENDERED))
    text = yaml.safe_dump(doc)
    assert "tokengate." not in text and "translator" not in text
    assert "envoy.filters.http.router" in text and "envoy.filters.http.upstream_codec" in text
    assert ["deployment/a"] == [c["name"] for c in doc["static_resources"]["clusters"]]


def test_profile_summary_ranks_self_time_and_names_native_frames() -> None:
    """Leaf frames give self time; C-only stacks are named for what they are, roots rank nothing."""
    from bench.profile import Frame, summarise

    root = Frame("run", "/x/translator/main.py", 1)
    loop = Frame("Runner.run", "/usr/lib/python3.11/asyncio/runners.py", 118)
    handler = Frame("on_request_body", "/work/main/translator/extproc/router.py", 120)
    stacks = [([root, loop], 3.0), ([root, loop, handler], 1.0)]
    out = summarise(stacks)
    assert 2 == out["samples"]
    assert "[event loop + gRPC/uvloop C code (no Python frame)]" == out["self"][0]["function"]
    assert 75.0 == out["self"][0]["percent"]
    assert ["on_request_body (translator/extproc/router.py)"] == [r["function"] for r in out["inclusive"]]
    assert {"translator (tokengate)": 25.0} == {r["package"]: r["percent"] for r in out["by_package"]
                                                  if r["package"].startswith("translator")}


def test_table_shows_messages_and_streams_per_request() -> None:
    """The ext_proc column adds the router's and the upstream filter's messages and streams."""
    doc = _doc(B=(8000.0, 0.3), C=(5000.0, 0.5))
    doc["fixed"]["C"]["ext_proc_msgs_per_request"] = {"router": 3.0, "upstream": 1.0,
                                                      "router_streams": 1.0, "upstream_streams": 1.0}
    rows = {line.split(" |")[0]: line for line in report.fixed_table(doc)}
    assert "| 4.00 / 2.00 |" in rows["| **C** C"]


def test_round_goals_take_the_median_of_each_rounds_own_ratio() -> None:
    """Interleaved rounds: C/N and D/C per round (same round's numbers), median and range shown."""
    doc = {"rounds": {"count": 3, "rps": {"N": [1000.0, 800.0, 1200.0], "C": [900.0, 640.0, 960.0],
                                          "D1": [900.0, 320.0, 864.0], "D5": [720.0, 512.0, 768.0]}}}
    got = {g.measure.split(",")[0]: g for g in report.round_goals(doc)}
    assert (0.8, False) == (got["C/N req/s"].value, got["C/N req/s"].met)  # 0.9, 0.8, 0.8
    assert "range 0.80–0.90" in got["C/N req/s"].measure
    assert (0.9, True) == (got["D1/C req/s"].value, got["D1/C req/s"].met)  # 1.0, 0.5, 0.9
    assert (0.8, False) == (got["D5/C req/s"].value, got["D5/C req/s"].met)  # the Responses pairs too: 0.8, 0.8, 0.8
    assert [] == report.round_goals({})
    doc["rounds"]["streaming"] = {"N": {"chunk_us": {"p50": 600.0}, "ttft_ms": {"p50": 2.0}},
                                  "C": {"chunk_us": {"p50": 660.0}, "ttft_ms": {"p50": 2.6}}}
    chunk, ttft = [g for g in report.round_goals(doc) if g.measure.startswith("streaming")]
    assert (1.1, True, 1.3, False) == (round(chunk.value, 3), chunk.met, round(ttft.value, 3), ttft.met)


def test_the_rounds_cpu_ratio_is_the_median_of_each_rounds_own() -> None:
    """N/C CPU from the interleaved rounds: each round's N units over its C units (a round without the
    upstream's CPU is left out), median and range shown."""
    doc = {"rounds": {"count": 4, "rps": {"N": [1.0] * 4, "C": [1.0] * 4},
                      "cpu_units": {"N": [8.0, 9.0, 8.0, None], "C": [10.0, 10.0, 10.0, 10.0]}}}
    [goal] = [g for g in report.round_goals(doc) if g.measure.startswith("N/C CPU")]
    assert (0.8, False) == (round(goal.value, 3), goal.met)  # 0.8, 0.9, 0.8
    assert "median of 3 interleaved rounds (range 0.80–0.90)" in goal.measure
    doc["rounds"]["cpu_units"]["C"] = [9.0, 10.0, 9.0, 10.0]
    assert [g.met for g in report.round_goals(doc) if g.measure.startswith("N/C CPU")] == [True]  # 0.889, 0.9, 0.889


def test_the_rounds_cpu_ratio_in_seconds_leaves_the_load_generator_out() -> None:
    """N/C CPU from each round's seconds a request (every process but wrk), whose upstream is not the same work
    for both sides; median and range shown."""
    n = [{"upstream envoy": 0.1, "envoy": 0.4, "noop-0": 0.3, "wrk (client)": 0.5},
         {"upstream envoy": 0.1, "envoy": 0.5, "noop-0": 0.2, "wrk (client)": 0.5},
         {"upstream envoy": 0.1, "envoy": 0.4, "noop-0": 0.4, "wrk (client)": 0.5}]
    c = [{"upstream envoy": 0.1, "envoy": 0.5, "translator-0": 0.4, "redis": 0.0, "wrk (client)": 0.1},
         {"upstream envoy": 0.1, "envoy": 0.5, "translator-0": 0.5, "wrk (client)": 0.1},
         {"upstream envoy": 0.1, "envoy": 0.5, "translator-0": 0.4, "wrk (client)": 0.1}]
    doc = {"rounds": {"count": 3, "rps": {"N": [1.0] * 3, "C": [1.0] * 3}, "cpu_per_1k": {"N": n, "C": c}}}
    [goal] = [g for g in report.round_goals(doc) if g.measure.startswith("N/C CPU per request in seconds")]
    assert (0.8, False) == (round(goal.value, 3), goal.met)  # 0.8 / 1.0, 0.8 / 1.1, 0.9 / 1.0
    assert "median of 3 interleaved rounds (range 0.73–0.90)" in goal.measure


def test_the_rounds_cpu_split_adds_up_each_kinds_workers_and_takes_the_median() -> None:
    """Each process kind's CPU in the rounds (a kind's workers added up in each round, then the median of the
    rounds), N and C side by side in the notes; nothing without the per-process figures."""
    doc = {"rounds": {"cpu_per_1k": {
        "N": [{"envoy": 0.5, "noop-0": 0.3, "noop-1": 0.3}, {"envoy": 0.7, "noop-0": 0.4, "noop-1": 0.2},
              {"envoy": 0.4, "noop-0": 0.5, "noop-1": 0.5}],
        "C": [{"envoy": 0.5, "translator-0": 0.4, "translator-1": 0.5, "redis": 0.04}]}}}
    assert "N envoy 0.500 · noop 0.600; C envoy 0.500 · translator 0.900 · redis 0.040" == report.rounds_cpu(doc)
    assert any("medians by process kind: N envoy 0.500" in line for line in report.notes(doc))
    assert "" == report.rounds_cpu({"rounds": {"cpu_units": {}}})
    assert not any("process kind" in line for line in report.notes({}))


def test_cpu_units_cancel_a_slow_phase_of_the_machine() -> None:
    """Everything 20% dearer in N's run (the upstream too): the ratio sees only what N and C do differently."""
    doc = {"fixed": {sid: {"available": True, "runs": {"16": {"rps": 1.0, "cpu_per_1k": per}}} for sid, per in (
        ("N", {"upstream envoy": 0.24, "envoy": 0.6, "noop-0": 0.6, "wrk (client)": 0.05}),
        ("C", {"upstream envoy": 0.2, "envoy": 0.5, "translator-0": 0.8, "wrk (client)": 0.04}))}}
    assert 6.0 == report.cpu_units(doc, "N") and 7.5 == report.cpu_units(doc, "C")
    [goal] = [g for g in report.goals(doc) if g.measure.startswith("N/C CPU")]
    assert (0.8, False) == (goal.value, goal.met)


def test_the_floor_burns_python_only_when_asked() -> None:
    """bench.noop's NOOP_BURN_US: no steps without it; steps in proportion to the time asked."""
    assert 0 == calibrated(0.0)
    one, ten = calibrated(0.0001), calibrated(0.001)
    assert 0 < one < ten
    assert spin(4) == 0 ^ 1 ^ 2 ^ 3


def test_the_floor_is_sent_a_key_shaped_like_tokengates() -> None:
    """N's requests carry an Authorization header as C's do, its key of a real key's shape and length, so the two
    sides of N/C are the same request bytes (the no-op server never reads it)."""
    [(name, value)] = _floor_auth().items()
    real = store.new_key(gateway.ACCOUNT)
    assert ("Authorization", len(real), gateway.ACCOUNT) == (
        name, len(value.removeprefix("Bearer ")), store.account_of(value.removeprefix("Bearer ")))
    assert value.startswith("Bearer ") and _floor_auth() != _floor_auth()


def test_scenario_l_sends_a_coding_agents_long_turn() -> None:
    """L's body: about the size asked, valid OpenAI chat with tools, every tool call answered by its result."""
    body = agent_request("gpt-bench", kib=200)
    assert 200 * 1024 <= len(body) < 210 * 1024
    doc = orjson.loads(body)
    assert doc["model"] == "gpt-bench" and len(doc["tools"]) == 24
    calls = [c["id"] for m in doc["messages"] if m["role"] == "assistant" for c in m["tool_calls"]]
    answered = [m["tool_call_id"] for m in doc["messages"] if m["role"] == "tool"]
    assert len(calls) > 30 and calls == answered
    assert len(agent_request("gpt-bench", kib=600)) >= 600 * 1024


def test_long_goals_hold_the_translated_pair_and_report_the_floor() -> None:
    """L-D1/L-C is a goal like every pair; against the floor and Envoy, L is reported, not judged."""
    doc = {"fixed": {sid: {"available": True, "runs": {
        "1": {"rps": 1.0, "latency_ms": {"p50": p50}},
        "16": {"rps": rps, "latency_ms": {"p50": p50}, "cpu_per_1k": {"upstream envoy": 0.1, "envoy": units / 10}}}}
        for sid, rps, p50, units in (("L-B", 2000.0, 1.0, 3.0), ("L-N", 800.0, 2.0, 9.0), ("L-C", 400.0, 3.5, 19.0),
                                     ("L-D1", 300.0, 4.0, 20.0))}}
    by_name = {g.measure.split(" (")[0].split(",")[0]: g for g in report.long_goals(doc)}
    assert (0.75, False) == (by_name["L-D1/L-C req/s"].value, by_name["L-D1/L-C req/s"].met)
    assert 0.5 == pytest.approx(by_name["L-N/L-C CPU per request at c=16"].value)
    assert by_name["L-N/L-C CPU per request at c=16"].met is None
    added = {g.measure: g.value for g in report.long_goals(doc) if g.measure.startswith("long body")}
    assert added == {"long body: added p50 at c=1, L-N−L-B": 1.0, "long body: added p50 at c=1, L-C−L-B": 2.5,
                     "long body: added p50 at c=1, L-D1−L-B": 3.0}
    assert report.long_goals({"fixed": {}}) == []  # no L run: no rows


def test_litellm_is_installed_again_for_another_spec_or_interpreter(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Scenario F's venv is kept while its stamp names the same spec on this interpreter; a stamp of another (or of
    before the interpreter was recorded) makes the venv again, cleared, on this one."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "litellm").write_text("")
    calls: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(litellm.subprocess, "run", run)
    stamp = venv / ".bench-installed"
    stamp.write_text(litellm._stamped("litellm==1"))
    assert venv / "bin" / "litellm" == litellm.ensure_installed("litellm==1", venv, log=lambda _: None)
    assert [] == calls
    for before in ("litellm==1\n", "litellm==1\n/usr/bin/python3.9\n", litellm._stamped("litellm==2")):
        stamp.write_text(before)
        calls.clear()
        litellm.ensure_installed("litellm==1", venv, log=lambda _: None)
        assert ["-m", "venv", "--clear", str(venv)] == calls[0][1:] and "litellm==1" == calls[1][-1]
        assert litellm._stamped("litellm==1") == stamp.read_text()
