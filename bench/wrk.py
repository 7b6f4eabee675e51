"""Fixed-body load with ``wrk`` (Debian package): a Lua script per target, JSON out.

The script sets method, headers and body, and its ``done`` hook prints one line
``WRK_JSON {...}`` with wrk's own counts and latency percentiles (µs), so
nothing depends on wrk's human-readable layout. ``parse_text`` reads that layout
too (Requests/sec, the --latency distribution), as a cross-check and for runs
made by hand.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import child_cpu

MARK = "WRK_JSON "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%.1f,"mean":%.1f,"max":%.1f,"p50":%.1f,"p90":%.1f,"p99":%.1f}}\n',
    "@MARK@", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass(frozen=True, slots=True)
class Target:
    """One request shape: where to send it and what."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Settings:
    connections: int
    threads: int
    duration_s: float
    timeout_s: float = 10.0

    @property
    def seconds(self) -> int:
        """wrk takes whole seconds only."""
        return max(1, round(self.duration_s))

    def argv(self) -> list[str]:
        return [f"-t{self.threads}", f"-c{self.connections}", f"-d{self.seconds}s",
                f"--timeout={max(1, round(self.timeout_s))}s"]

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections} -d{self.seconds}s --timeout {max(1, round(self.timeout_s))}s"


@dataclass(frozen=True, slots=True)
class Result:
    settings: Settings
    requests: int
    duration_s: float
    rps: float
    errors: dict[str, int]
    latency_ms: dict[str, float]  # min, mean, max, p50, p90, p99
    cpu_s: float = 0.0  # wrk's own user+system seconds

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["settings"]["tool"] = self.settings.describe()
        return out


def lua_script(target: Target) -> str:
    body = target.body.decode()
    level = "=" * 4
    if f"]{level}]" in body:
        raise ValueError("the request body contains the Lua long-string terminator")
    lines = [f'wrk.method = "{target.method}"', f"wrk.body = [{level}[{body}]{level}]"]
    headers = {"Content-Type": "application/json", **target.headers}
    for k, v in headers.items():
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    return "\n".join(lines) + "\n" + _DONE.replace("@MARK@", MARK)


def parse_json_line(stdout: str, settings: Settings, cpu_s: float = 0.0) -> Result:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            doc = json.loads(line[len(MARK):])
            break
    else:
        raise ValueError(f"wrk printed no {MARK.strip()} line:\n{stdout[-2000:]}")
    duration = doc["duration_us"] / 1e6
    lat = {k: round(v / 1000, 4) for k, v in doc["latency_us"].items()}
    return Result(settings, doc["requests"], round(duration, 3),
                  round(doc["requests"] / duration, 1) if duration else 0.0, doc["errors"], lat, cpu_s)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")


def parse_duration_ms(text: str) -> float:
    """wrk's duration spelling (``320.00us``, ``1.21ms``, ``2.00s``) in milliseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_text(stdout: str) -> dict[str, float]:
    """Requests/sec, non-2xx count and the --latency percentiles from wrk's own report."""
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            out["rps"] = float(s.split()[1])
        elif s.startswith("Non-2xx or 3xx responses:"):
            out["non_2xx"] = float(s.split()[-1])
        elif m := re.match(r"^(50|75|90|99)%\s+(\S+)$", s):
            out[f"p{m.group(1)}_ms"] = parse_duration_ms(m.group(2))
    return out


def binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is missing: install the Debian package (apt-get install wrk).")
    return found


def run(target: Target, settings: Settings) -> Result:
    """One bounded wrk run; raises when wrk fails or prints no result."""
    with tempfile.TemporaryDirectory(prefix="tg-wrk-") as tmp:
        script = Path(tmp) / "bench.lua"
        script.write_text(lua_script(target))
        argv = [binary(), *settings.argv(), "-s", str(script), target.url]
        cpu: dict[str, float] = {}
        with child_cpu(cpu, "wrk"):
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=settings.seconds + settings.timeout_s + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip() or proc.stdout[-500:]}")
    return parse_json_line(proc.stdout, settings, cpu["wrk"])
