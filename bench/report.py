"""From a results document to ratios, goal checks and the Markdown table.

Pure: takes the JSON the session wrote (also a file saved earlier, see
``python -m bench --table FILE``) and returns text. Missing scenarios show as
"–" and a goal that cannot be computed is "n/a", never a made-up number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.stats import ratio

DASH = "–"
D_IDS = ("D1", "D2", "D3", "D4", "D5")


@dataclass(frozen=True)
class Goal:
    measure: str
    value: float | None
    goal: str
    met: bool | None
    unit: str = ""

    def row(self) -> str:
        shown = DASH if self.value is None else f"{self.value:.3g}{self.unit}"
        verdict = "n/a" if self.met is None else ("yes" if self.met else "**no**")
        return f"| {self.measure} | {shown} | {self.goal} | {verdict} |"


def _run(doc: Mapping[str, Any], sid: str, c: int) -> Mapping[str, Any] | None:
    s = doc.get("fixed", {}).get(sid)
    if not s or not s.get("available"):
        return None
    run: Mapping[str, Any] | None = s.get("runs", {}).get(str(c))
    return run


def rps(doc: Mapping[str, Any], sid: str, c: int) -> float | None:
    run = _run(doc, sid, c)
    return float(run["rps"]) if run else None


def latency(doc: Mapping[str, Any], sid: str, c: int, q: str = "p50") -> float | None:
    run = _run(doc, sid, c)
    return float(run["latency_ms"][q]) if run else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _at_least(v: float | None, floor: float) -> bool | None:
    return None if v is None else v >= floor


def _at_most(v: float | None, ceiling: float) -> bool | None:
    return None if v is None else v <= ceiling


def _stream(doc: Mapping[str, Any], sid: str, field: str, q: str = "p50") -> float | None:
    s = doc.get("streaming", {}).get(sid)
    if not s or not s.get("available"):
        return None
    v = s[field][q]
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def goals(doc: Mapping[str, Any]) -> list[Goal]:
    """The hot-path issue's goals (#11), each from this one run."""
    out = []
    for c in (16, 64):
        v = ratio(rps(doc, "C", c), rps(doc, "B", c))
        out.append(Goal(f"C/B req/s, c={c}", v, "≥ 0.25 (≥ 0.60 with no Python per request)", _at_least(v, 0.25)))
    for c in (16, 64):
        v = ratio(rps(doc, "C", c), rps(doc, "N", c))
        out.append(Goal(f"C/N req/s, c={c} (tokengate ÷ its no-op floor)", v, "≥ 0.85", _at_least(v, 0.85)))
    for c in (16, 64):
        v = ratio(rps(doc, "C", c), rps(doc, "F", c))
        out.append(Goal(f"C/F req/s, c={c}", v, "≥ 25×", _at_least(v, 25), "×"))
    for sid in D_IDS:
        v = ratio(rps(doc, sid, 16), rps(doc, "C", 16))
        label = doc.get("fixed", {}).get(sid, {}).get("label", sid).removeprefix("tokengate, ")
        out.append(Goal(f"{sid}/C req/s, c=16 ({label})", v, "≥ 0.85", _at_least(v, 0.85)))
    v = ratio(cpu_units(doc, "N"), cpu_units(doc, "C"))
    out.append(Goal("N/C CPU per request at c=16, each in units of the upstream's own CPU per request", v,
                    "≥ 0.85", _at_least(v, 0.85)))
    out += round_goals(doc)
    out += long_goals(doc)
    added = _diff(latency(doc, "C", 1), latency(doc, "B", 1))
    out.append(Goal("added p50 at c=1, C−B", added, "≤ 0.5 ms", _at_most(added, 0.5), " ms"))
    for q in ("p90", "p99"):
        v = _diff(latency(doc, "C", 1, q), latency(doc, "B", 1, q))
        out.append(Goal(f"added {q} at c=1, C−B", v, "(reported)", None, " ms"))
    floor = _diff(latency(doc, "N", 1), latency(doc, "B", 1))
    out.append(Goal("added p50 at c=1, N−B (the floor)", floor, "(reported)", None, " ms"))
    ttft = _diff(_stream(doc, "C", "ttft_ms"), _stream(doc, "B", "ttft_ms"))
    out.append(Goal("streaming: added TTFT p50, C−B", ttft, "≤ 0.5 ms", _at_most(ttft, 0.5), " ms"))
    chunk = _diff(_stream(doc, "C", "chunk_us"), _stream(doc, "B", "chunk_us"))
    out.append(Goal("streaming: added per-chunk p50, C−B", chunk, "≤ 100 µs", _at_most(chunk, 100), " µs"))
    chunk_floor = _diff(_stream(doc, "N", "chunk_us"), _stream(doc, "B", "chunk_us"))
    out.append(Goal("streaming: added per-chunk p50, N−B (the floor)", chunk_floor, "(reported)", None, " µs"))
    soak = doc.get("soak")
    if soak:
        rows = soak["translators"].values()
        start = sum(t["rss_start_mib"] for t in rows)
        end = sum(t["rss_end_mib"] for t in rows)
        out.append(Goal(f"soak {soak['seconds']:g} s: translator RSS start → end (all)", end - start,
                        f"(reported: {start:.0f} → {end:.0f} MiB)", None, " MiB"))
        growth = max(t.get("slope_second_half_mib_per_10min", t["slope_mib_per_10min"]) for t in rows)
        out.append(Goal("soak: translator RSS slope, second half (worst)", growth,
                        "flat (≤ 2 MiB / 10 min)", _at_most(growth, 2.0), " MiB/10min"))
    return out


def cpu_units(doc: Mapping[str, Any], sid: str, c: int = 16) -> float | None:
    """``upstream_units`` of scenario ``sid``'s run at ``c``."""
    run = _run(doc, sid, c)
    return upstream_units(run.get("cpu_per_1k", {})) if run else None


def upstream_units(cpu_per_1k: Mapping[str, float]) -> float | None:
    """CPU per request of every process but the load generator, in units of the fast upstream's CPU
    per request: the upstream does the same work for every scenario, so a slow phase of the
    machine (which inflates everything alike) cancels out of a ratio of two scenarios. (Not quite
    the same work: on kept-alive connections its CPU per request grows as requests reach it more
    spread out — about 10% more behind tokengate than behind the floor — so the interleaved
    rounds, which share the machine's phase, give the ratio in seconds too.)"""
    up = cpu_per_1k.get("upstream envoy")
    if not up:
        return None
    return _busy(cpu_per_1k) / float(up)


def _busy(cpu_per_1k: Mapping[str, float]) -> float:
    """CPU per request of every process but the load generator."""
    return float(sum(v for k, v in cpu_per_1k.items() if k != "wrk (client)"))


def long_goals(doc: Mapping[str, Any]) -> list[Goal]:
    """Scenario L, a coding agent's long turn: the translated pair against the same-protocol path (a goal, as for
    every pair), and, reported, what the long body costs against the floor (which never parses it) and Envoy."""
    if _run(doc, "L-C", 16) is None:
        return []
    v = ratio(rps(doc, "L-D1", 16), rps(doc, "L-C", 16))
    out = [Goal("L-D1/L-C req/s, c=16 (a long agent turn, OpenAI client -> Anthropic upstream)", v, "≥ 0.85",
                _at_least(v, 0.85))]
    v = ratio(cpu_units(doc, "L-N"), cpu_units(doc, "L-C"))
    out.append(Goal("L-N/L-C CPU per request at c=16, upstream units (the floor never parses the body)", v,
                    "(reported)", None))
    v = ratio(rps(doc, "L-C", 16), rps(doc, "L-N", 16))
    out.append(Goal("L-C/L-N req/s, c=16", v, "(reported)", None))
    for sid in ("L-N", "L-C", "L-D1"):
        v = _diff(latency(doc, sid, 1), latency(doc, "L-B", 1))
        out.append(Goal(f"long body: added p50 at c=1, {sid}−L-B", v, "(reported)", None, " ms"))
    return out


def round_goals(doc: Mapping[str, Any]) -> list[Goal]:
    """C/N and D/C from the interleaved rounds: the median of each round's own ratio, with the range."""
    rounds = doc.get("rounds")
    if not rounds:
        return []
    rps = rounds["rps"]
    out = []
    for num, den in [("C", "N"), *((sid, "C") for sid in D_IDS)]:
        if num not in rps or den not in rps:
            continue
        per = [a / b for a, b in zip(rps[num], rps[den], strict=True) if b]
        if not per:
            continue
        v = statistics.median(per)
        out.append(Goal(f"{num}/{den} req/s, c=16, median of {len(per)} interleaved rounds "
                        f"(range {min(per):.2f}–{max(per):.2f})", v, "≥ 0.85", _at_least(v, 0.85)))
        units = rounds.get("cpu_units") or {}
        if (num, den) == ("C", "N") and "N" in units and "C" in units:  # the same rounds' CPU, each in upstream units
            per = [n / c for n, c in zip(units["N"], units["C"], strict=True) if n and c]
            if per:
                v = statistics.median(per)
                out.append(Goal(f"N/C CPU per request in upstream units, c=16, median of {len(per)} interleaved "
                                f"rounds (range {min(per):.2f}–{max(per):.2f})", v, "≥ 0.85", _at_least(v, 0.85)))
        per_1k = rounds.get("cpu_per_1k") or {}
        if (num, den) == ("C", "N") and "N" in per_1k and "C" in per_1k:  # … and in seconds: both in one phase
            per = [_busy(n) / _busy(c) for n, c in zip(per_1k["N"], per_1k["C"], strict=True) if _busy(c)]
            if per:
                v = statistics.median(per)
                out.append(Goal(f"N/C CPU per request in seconds, c=16, median of {len(per)} interleaved rounds "
                                f"(range {min(per):.2f}–{max(per):.2f})", v, "≥ 0.85", _at_least(v, 0.85)))
    streaming = rounds.get("streaming") or {}
    if "N" in streaming and "C" in streaming:
        for field, unit, what in (("chunk_us", " µs", "per-chunk"), ("ttft_ms", " ms", "TTFT")):
            c, n = streaming["C"][field]["p50"], streaming["N"][field]["p50"]
            if c is not None and n is not None:
                v = c / n
                out.append(Goal(f"streaming {what} p50, C ÷ N, interleaved ({c:.3g}{unit} vs {n:.3g}{unit})", v,
                                "≤ 1.15 (within 15% of the floor)", _at_most(v, 1.15)))
    return out


def _num(v: float | None, fmt: str = ",.0f") -> str:
    return DASH if v is None else format(v, fmt)


def _lat(run: Mapping[str, Any] | None) -> str:
    if not run:
        return DASH
    lat = run["latency_ms"]
    return f"{lat['p50']:.3f} / {lat['p90']:.3f} / {lat['p99']:.3f}"


def _cpu(run: Mapping[str, Any] | None) -> str:
    if not run:
        return DASH
    per = run.get("cpu_per_1k", {})
    return " · ".join(f"{name} {v:.3f}" for name, v in per.items())


def _rss(s: Mapping[str, Any]) -> str:
    peaks = s.get("translator_peak_rss_kib") or {}
    if peaks:
        return " / ".join(f"{v / 1024:.0f}" for v in peaks.values()) + " MiB"
    if s.get("peak_rss_kib"):
        return f"{s['peak_rss_kib'] / 1024:.0f} MiB (LiteLLM)"
    return DASH


def _msgs(s: Mapping[str, Any]) -> str:
    """ext_proc messages / gRPC streams per request (router + upstream filter), from Envoy's counters."""
    m = s.get("ext_proc_msgs_per_request") or {}
    if not m:
        return "0 / 0" if s.get("id") in ("A", "B", "F", "L-B") else DASH
    msgs = m.get("router", 0) + m.get("upstream", 0)
    if "router_streams" not in m:
        return f"{msgs:.2f} / ?"
    return f"{msgs:.2f} / {m['router_streams'] + m['upstream_streams']:.2f}"


def fixed_table(doc: Mapping[str, Any]) -> list[str]:
    lines = [
        "| scenario | req/s c=16 | req/s c=64 | latency ms c=1 p50 / p90 / p99 | latency ms c=16 p50 / p90 / p99 "
        "| ext_proc msgs / streams per request | CPU s per 1k requests, c=16 | translator peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for sid, s in doc.get("fixed", {}).items():
        name = f"**{sid}** {s.get('label', '')}"
        if not s.get("available"):
            reason = str(s.get("reason") or "")
            lines.append(f"| {name} | not available yet | | | | | {reason[:140]} | |")
            continue
        lines.append(f"| {name} | {_num(rps(doc, sid, 16))} | {_num(rps(doc, sid, 64))} | "
                     f"{_lat(_run(doc, sid, 1))} | {_lat(_run(doc, sid, 16))} | {_msgs(s)} "
                     f"| {_cpu(_run(doc, sid, 16))} "
                     f"| {_rss(s)} |")
    return lines


def stream_table(doc: Mapping[str, Any]) -> list[str]:
    rows = doc.get("streaming", {})
    if not rows:
        return []
    lines = ["| path | streams × chunks | TTFT ms p50 / p90 / p99 | chunk latency µs p50 / p90 / p99 "
             "| CPU s per stream |", "| --- | ---: | ---: | ---: | --- |"]
    for sid, s in rows.items():
        if not s.get("available"):
            failures = "; ".join(s.get("failures", []))[:140]
            lines.append(f"| **E-{sid}** {s.get('label', '')} | failed: {failures} | | | |")
            continue
        t, c = s["ttft_ms"], s["chunk_us"]
        per = " · ".join(f"{k} {v / s['streams']:.3f}" for k, v in s.get("cpu_s", {}).items())
        lines.append(f"| **E-{sid}** {s['label']} | {s['streams']} × {s['chunks'] // max(1, s['streams'])} | "
                     f"{t['p50']:.3f} / {t['p90']:.3f} / {t['p99']:.3f} | "
                     f"{c['p50']:.0f} / {c['p90']:.0f} / {c['p99']:.0f} | {per} |")
    return lines


def profile_lines(doc: Mapping[str, Any]) -> list[str]:
    prof = doc.get("profile")
    if not prof or not prof.get("samples"):
        return []
    lines = [f"Translator profile (py-spy, {prof['samples']} samples over all translators, self time):", ""]
    lines += ["| self % | function |", "| ---: | --- |"]
    lines += [f"| {r['percent']:.1f} | `{r['function']}` |" for r in prof["self"][:12]]
    lines += ["", "| self % by package | package |", "| ---: | --- |"]
    lines += [f"| {r['percent']:.1f} | {r['package']} |" for r in prof["by_package"]]
    return lines


def notes(doc: Mapping[str, Any]) -> list[str]:
    meta = doc.get("meta", {})
    m = meta.get("machine", {})
    o = meta.get("options", {})
    out = [
        f"- Machine: {m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), {m.get('memory_gib', '?')} GiB, "
        f"{m.get('kernel', '?')}; Python {m.get('python', '?')}; Envoy {meta.get('versions', {}).get('envoy', '?')}.",
        f"- Load: {meta.get('versions', {}).get('wrk', 'wrk')}, `{o.get('wrk', '')}` per concurrency, "
        f"after a {o.get('warmup_s', '?')} s warm-up; keep-alive; the same small JSON request for A/B/N/C/F, "
        "L a coding agent's long turn. "
        "Latency is wrk's (uncorrected for coordinated omission).",
        "- wrk, Envoy, the translators, Redis and the upstream share the same cores; nothing is pinned, so "
        "absolute numbers move with the load generator's own CPU (its column in the CPU figures).",
        f"- tokengate: {o.get('workers', '?')} translator processes, Envoy workers "
        f"{o.get('envoy_workers') or 'one per core'}, log level {o.get('log_level', '?')}. "
        + _c_note(doc.get("fixed", {}).get("C")),
        "- B is tokengate's rendered Envoy config with the ext_proc filters (and the translator cluster) removed; "
        "the client sends the routing header the translator would set.",
        "- N is tokengate's rendered Envoy config, unchanged, with `bench.noop` servers on the translator sockets: "
        "each ext_proc message is answered with only what routing needs (the design's floor).",
        f"- E: {o.get('stream_chunks', '?')} SSE chunks {o.get('stream_gap_ms', '?')} ms apart per stream; TTFT is "
        "request written → first chunk read; chunk latency is upstream write → client read (CLOCK_MONOTONIC).",
    ]
    if split := rounds_cpu(doc):
        out.append(f"- CPU s per 1k requests in the interleaved rounds, medians by process kind: {split}.")
    foreign = max((r.get("foreign_cpu_share", 0.0) for s in doc.get("fixed", {}).values()
                   for r in s.get("runs", {}).values()), default=0.0)
    if foreign > 0.15:
        out.append(f"- **Other processes used up to {foreign:.2f} cores during some runs** (see "
                   "`foreign_cpu_share` in the JSON): those figures are skewed; rerun on a quiet machine.")
    return out


def rounds_cpu(doc: Mapping[str, Any]) -> str:
    """Where each stack's CPU went in the interleaved rounds: per scenario, each kind of process (its workers
    added up: ``translator-0`` and ``translator-1`` are ``translator``) as the median of the rounds; "" without."""
    per = (doc.get("rounds") or {}).get("cpu_per_1k") or {}
    parts = []
    for sid, runs in per.items():
        kinds: dict[str, list[float]] = {}
        for run in runs:
            summed: dict[str, float] = {}
            for name, v in run.items():
                kind = name.rsplit("-", 1)[0] if name[-1:].isdigit() else name
                summed[kind] = summed.get(kind, 0.0) + v
            for kind, v in summed.items():
                kinds.setdefault(kind, []).append(v)
        if kinds:
            parts.append(f"{sid} " + " · ".join(f"{k} {statistics.median(v):.3f}" for k, v in kinds.items()))
    return "; ".join(parts)


def _c_note(c: Mapping[str, Any] | None) -> str:
    if not c:
        return ""
    msgs = c.get("ext_proc_msgs_per_request") or {}
    per = (f" Envoy sent {msgs.get('router', '?')} router + {msgs.get('upstream', '?')} upstream ext_proc "
           "messages per request (each one a gRPC round trip).") if msgs else ""
    if c.get("admission"):
        return ("C runs admission (key, model, rate limits, balance: in process against the translator's lease on "
                "the bench account, one Redis EVALSHA when a lease is taken, topped up or renewed) and metering "
                "(XADD in batches off the request path, settled by the settler)." + per)
    return ("C runs auth (one Redis read per request) and metering (one XADD per request off the request "
            "path); admission/billing Lua does not exist yet, so C has no hold/settle round trip." + per)


def markdown(doc: Mapping[str, Any]) -> str:
    lines = ["### Throughput, latency, CPU", ""]
    lines += fixed_table(doc)
    if st := stream_table(doc):
        lines += ["", "### Streaming (E)", ""] + st
    lines += ["", "### Ratios and goals", "", "| measure | value | goal | met |", "| --- | ---: | --- | --- |"]
    lines += [g.row() for g in goals(doc)]
    if prof := profile_lines(doc):
        lines += ["", "### Profile", ""] + prof
    lines += ["", "### Notes", ""] + notes(doc)
    return "\n".join(lines) + "\n"
