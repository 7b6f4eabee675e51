"""``--soak N``: hold moderate load on tokengate for N seconds and watch translator memory.

Load: wrk at a low connection count on the same-protocol request (scenario C),
plus one streaming client looping scenario E's stream, both bounded by the same
deadline. Every ``interval`` seconds each translator's VmRSS is sampled; the
result gives RSS at start and end, the peak, and a least-squares slope in
MiB per 10 minutes, so "flat" is a number, not a glance.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import procs, stream_client, wrk
from bench.stats import slope


def _sample(pids: Mapping[str, int], t0: float, out: dict[str, list[tuple[float, int]]]) -> None:
    now = time.monotonic() - t0
    for name, pid in pids.items():
        out.setdefault(name, []).append((round(now, 1), procs.memory_kib(pid, "VmRSS") or 0))


async def _streams(port: int, path: str, body: bytes, headers: Mapping[str, str], deadline: float) -> int:
    done = 0
    loop = asyncio.get_running_loop()
    while loop.time() < deadline - 2:
        samples = await stream_client.run(port, path, body, headers, streams=1, concurrency=1,
                                          max_seconds=max(1.0, deadline - loop.time()))
        done += samples.streams
        if samples.failures:
            await asyncio.sleep(1)
    return done


async def _hold(seconds: float, interval: float, pids: Mapping[str, int], stream: tuple[int, str, bytes, dict[str, str]]
                ) -> tuple[dict[str, list[tuple[float, int]]], int]:
    samples: dict[str, list[tuple[float, int]]] = {}
    t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    streamer = asyncio.create_task(_streams(*stream, deadline))
    _sample(pids, t0, samples)
    while loop.time() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
        _sample(pids, t0, samples)
    return samples, await streamer


def run(target: wrk.Target, connections: int, seconds: float, pids: Mapping[str, int],
        stream: tuple[int, str, bytes, dict[str, str]], *, interval: float = 10.0,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    log(f"  soak: {seconds:g} s, wrk -c{connections} on C plus one looping stream; RSS every {interval:g} s")
    with tempfile.TemporaryDirectory(prefix="tg-soak-") as tmp:
        script = Path(tmp) / "soak.lua"
        script.write_text(wrk.lua_script(target))
        argv = [wrk.binary(), *wrk.Settings(connections, 1, seconds).argv(), "-s", str(script), target.url]
        load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            samples, streams = asyncio.run(_hold(seconds, interval, pids, stream))
            out, err = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    result = wrk.parse_json_line(out, wrk.Settings(connections, 1, seconds))
    per: dict[str, Any] = {}
    for name, points in samples.items():
        start_kib, end_kib = points[0][1], points[-1][1]
        per[name] = {
            "rss_start_mib": round(start_kib / 1024, 1), "rss_end_mib": round(end_kib / 1024, 1),
            "rss_peak_mib": round(max(v for _, v in points) / 1024, 1),
            "growth_mib": round((end_kib - start_kib) / 1024, 2),
            "slope_mib_per_10min": round(slope([(t, v / 1024) for t, v in points]) * 600, 2),
            # the first half holds the warm-up (allocator arenas, caches): judge "flat" on the second
            "slope_second_half_mib_per_10min": round(
                slope([(t, v / 1024) for t, v in points[len(points) // 2:]]) * 600, 2),
            "samples": points,
        }
        log(f"  soak {name}: RSS {per[name]['rss_start_mib']} -> {per[name]['rss_end_mib']} MiB "
            f"(peak {per[name]['rss_peak_mib']}, slope {per[name]['slope_mib_per_10min']} MiB/10 min, "
            f"second half {per[name]['slope_second_half_mib_per_10min']})")
    log(f"  soak: {result.requests} requests ({result.rps:.0f}/s), {streams} streams, errors {result.errors}")
    return {"seconds": seconds, "connections": connections, "requests": result.requests, "rps": result.rps,
            "errors": result.errors, "streams": streams, "interval_s": interval, "translators": per,
            "tool": f"wrk -t1 -c{connections} -d{seconds:g}s + 1 looping stream"}
