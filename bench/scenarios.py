"""Running one scenario: a probe, a warm-up, then bounded measured runs.

Fixed-body scenarios go through ``wrk`` once per concurrency; streaming ones
through ``bench.stream_client``. Around every measured run the CPU seconds of
each watched process are read, and the result records them per 1,000 requests.
"""

from __future__ import annotations

import asyncio
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench import procs, stream_client, wrk
from bench.stats import Summary

FOREIGN_WARN = 0.15  # cores used by processes we did not start, above which a run is flagged


@dataclass(frozen=True)
class Plan:
    """How long and how hard: shared by every scenario of a session."""

    duration_s: float = 10.0
    warmup_s: float = 2.0
    concurrencies: tuple[int, ...] = (1, 16, 64)
    wrk_threads: int = 1
    timeout_s: float = 10.0
    streams: int = 10
    stream_concurrency: int = 1

    def settings(self, connections: int, duration_s: float | None = None) -> wrk.Settings:
        return wrk.Settings(connections, max(1, min(self.wrk_threads, connections)),
                            duration_s if duration_s is not None else self.duration_s, self.timeout_s)


@dataclass(frozen=True)
class Probe:
    """What one request returned: enough to say whether a scenario is available."""

    status: int
    body: bytes

    def ok(self, expect_key: str) -> bool:
        return self.status == 200 and f'"{expect_key}"'.encode() in self.body

    def reason(self) -> str:
        text = self.body[:300].decode(errors="replace").replace("\n", " ")
        return f"probe answered HTTP {self.status}: {text}"


def probe(target: wrk.Target, timeout_s: float = 10.0) -> Probe:
    headers = {"Content-Type": "application/json", **target.headers}
    req = urllib.request.Request(target.url, data=target.body, headers=headers, method=target.method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - loopback URL we built
            return Probe(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        return Probe(exc.code, exc.read())
    except OSError as exc:
        return Probe(0, str(exc).encode())


@dataclass
class Fixed:
    """One fixed-body scenario's results, as stored in the results JSON."""

    id: str
    label: str
    target: str
    available: bool = True
    reason: str | None = None
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    translator_peak_rss_kib: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "target": self.target, "available": self.available,
                "reason": self.reason, "runs": self.runs,
                "translator_peak_rss_kib": self.translator_peak_rss_kib, **self.extra}


def measured(target: wrk.Target, settings: wrk.Settings, watch: procs.Watch) -> dict[str, Any]:
    before, busy, mine = watch.snapshot(), procs.machine_busy(), procs.self_cpu()
    result = wrk.run(target, settings)
    cpu = procs.cpu_delta(before, watch.snapshot())
    cpu["wrk (client)"] = result.cpu_s
    out = result.as_json()
    out["cpu_s"] = cpu
    out["cpu_per_1k"] = procs.per_thousand(cpu, result.requests)
    out["foreign_cpu_share"] = foreign_share(procs.machine_busy() - busy, sum(cpu.values()) + procs.self_cpu() - mine,
                                             result.duration_s)
    return out


def foreign_share(machine_busy_s: float, ours_s: float, seconds: float) -> float:
    """CPU used during a run by processes the bench did not start, in cores (0.25 = a quarter core).

    Another job on the machine skews every figure of that run; the table flags it.
    """
    if seconds <= 0:
        return 0.0
    return round(max(0.0, machine_busy_s - ours_s) / seconds, 3)


def peak_rss(pids: Mapping[str, int]) -> dict[str, int]:
    return {name: procs.memory_kib(pid, "VmHWM") or 0 for name, pid in pids.items()}


def run_fixed(
    sid: str, label: str, target: wrk.Target, plan: Plan, watch: procs.Watch, *,
    expect_key: str = "choices", translators: Mapping[str, int] | None = None,
    log: Callable[[str], None] = print,
) -> Fixed:
    """Probe once; if it answers as expected, warm up and measure each concurrency."""
    res = Fixed(sid, label, target.url)
    p = probe(target, plan.timeout_s)
    if not p.ok(expect_key):
        res.available, res.reason = False, p.reason()
        log(f"  {sid}: not available ({res.reason[:160]})")
        return res
    if plan.warmup_s > 0:
        wrk.run(target, plan.settings(max(plan.concurrencies), plan.warmup_s))
    for c in plan.concurrencies:
        run = measured(target, plan.settings(c), watch)
        res.runs[str(c)] = run
        errors = sum(run["errors"].values())
        foreign = run["foreign_cpu_share"]
        log(f"  {sid} c={c:<3} {run['rps']:>9.1f} req/s  p50 {run['latency_ms']['p50']:.3f} ms  "
            f"p99 {run['latency_ms']['p99']:.3f} ms" + (f"  ERRORS {run['errors']}" if errors else "")
            + (f"  (other processes used {foreign:.2f} cores: figures skewed)" if foreign > FOREIGN_WARN else ""))
    if translators:
        res.translator_peak_rss_kib = peak_rss(translators)
    return res


def run_stream(
    sid: str, label: str, url: str, body: bytes, headers: Mapping[str, str], plan: Plan, watch: procs.Watch,
    *, max_seconds: float, log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Scenario E through one path: TTFT and per-chunk latency summaries."""
    parts = urlsplit(url)
    port = parts.port or 80
    before = watch.snapshot()
    client_before = procs.self_cpu()
    samples = asyncio.run(stream_client.run(
        port, parts.path, body, headers, streams=plan.streams, concurrency=plan.stream_concurrency,
        max_seconds=max_seconds))
    cpu = procs.cpu_delta(before, watch.snapshot())
    cpu["bench (client)"] = round(procs.self_cpu() - client_before, 3)
    ttft = Summary.of([float(v) for v in samples.ttft_ns]).scaled(1e-6)
    chunk = Summary.of([float(v) for v in samples.chunk_ns]).scaled(1e-3)
    out = {
        "id": sid, "label": label, "target": url, "available": samples.streams > 0,
        "streams": samples.streams, "chunks": len(samples.chunk_ns),
        "chunks_per_stream_min": min(samples.chunks_per_stream, default=0),
        "failures": samples.failures[:5], "ttft_ms": summary_json(ttft), "chunk_us": summary_json(chunk),
        "cpu_s": cpu, "concurrency": plan.stream_concurrency,
    }
    if samples.streams:
        log(f"  E-{sid}: {samples.streams} streams, TTFT p50 {ttft.p50:.3f} ms, "
            f"chunk p50 {chunk.p50:.1f} µs p99 {chunk.p99:.1f} µs" +
            (f", failures {samples.failures[:2]}" if samples.failures else ""))
    else:
        log(f"  E-{sid}: no stream completed: {samples.failures[:2]}")
    return out


def summary_json(s: Summary) -> dict[str, float | None]:
    def r(v: float) -> float | None:
        return None if math.isnan(v) else round(v, 4)

    return {"n": s.n, "p50": r(s.p50), "p90": r(s.p90), "p99": r(s.p99), "mean": r(s.mean), "max": r(s.max)}
