"""``--profile``: where translator CPU goes, sampled by py-spy during a scenario-C run.

py-spy attaches to each translator process (``--nonblocking``: it does not pause
them, so the load is barely disturbed) and writes a speedscope file per process
into bench/results/ (open it at speedscope.app). The same files are read back
here to rank functions by self time (the frame on top of the stack) and by
inclusive time (anywhere on the stack), and to split the time by package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY_SPY_SPEC = "py-spy>=0.4"

# Where a frame's file lives decides its bucket; first match wins.
BUCKETS = (
    ("translator (tokengate)", ("/translator/",)),
    ("tokengate (config, store)", ("/tokengate/",)),
    ("grpc aio / cython", ("grpc/", "grpc_", "_cython")),
    ("protobuf", ("google/protobuf",)),
    ("redis client", ("redis/",)),
    ("structlog / logging", ("structlog/", "logging/")),
    ("asyncio / uvloop", ("asyncio/", "uvloop")),
    ("orjson", ("orjson",)),
)


def ensure_py_spy(log: Callable[[str], None] = print) -> str:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found:
        return found
    log(f"  profile: installing {PY_SPY_SPEC} into {Path(sys.executable).parent.parent} …")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PY_SPY_SPEC], check=True, timeout=600)
    return str(beside)


def start(pids: dict[str, int], out_dir: Path, stem: str, seconds: float, rate: int = 200) -> list[
        tuple[str, Path, subprocess.Popen[bytes]]]:
    exe = ensure_py_spy()
    started = []
    for name, pid in pids.items():
        out = out_dir / f"{stem}-{name}.speedscope.json"
        argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
                "--nonblocking", "--format", "speedscope", "--output", str(out)]
        started.append((name, out, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    return started


@dataclass(frozen=True)
class Frame:
    name: str
    file: str
    line: int

    @property
    def label(self) -> str:
        return f"{self.name} ({short_path(self.file)}:{self.line})"

    @property
    def function(self) -> str:
        native = NATIVE.get(self.name)
        return f"[{native}]" if native else f"{self.name} ({short_path(self.file)})"


def short_path(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# Leaf frames that stand for C code with no Python frame of its own above them.
NATIVE = {
    "Runner.run": "event loop + gRPC/uvloop C code (no Python frame)",
    "Thread.run": "gRPC completion-queue poller thread (C)",
}


# Frames at the bottom of every stack: 100% inclusive, so they rank nothing.
ROOTS = {"<module>", "run", "_run_module_as_main", "_run_code", "Thread._bootstrap", "Thread._bootstrap_inner"}


def bucket(file: str, name: str = "") -> str:
    if name in NATIVE:
        return NATIVE[name]
    for label, needles in BUCKETS:
        if any(n in file for n in needles):
            return label
    return "other (stdlib, C)"


def read_speedscope(doc: dict[str, Any]) -> list[tuple[list[Frame], float]]:
    """(stack root-first, weight) pairs from a speedscope file of ``sampled`` profiles."""
    frames = [Frame(f.get("name", "?"), f.get("file", ""), int(f.get("line") or 0))
              for f in doc["shared"]["frames"]]
    out = []
    for prof in doc["profiles"]:
        weights = prof.get("weights") or [1.0] * len(prof["samples"])
        for stack, w in zip(prof["samples"], weights, strict=False):
            out.append(([frames[i] for i in stack], float(w)))
    return out


def summarise(stacks: Iterable[tuple[list[Frame], float]], top: int = 15) -> dict[str, Any]:
    self_t: dict[str, float] = defaultdict(float)
    incl: dict[str, float] = defaultdict(float)
    buckets: dict[str, float] = defaultdict(float)
    threads: dict[str, float] = defaultdict(float)
    total = 0.0
    samples = 0
    for stack, w in stacks:
        if not stack:
            continue
        samples += 1
        total += w
        threads["grpc poller thread" if stack[0].name.startswith("Thread.")
                else "main (event loop) thread"] += w
        leaf = stack[-1]
        self_t[leaf.function] += w
        buckets[bucket(leaf.file, leaf.name)] += w
        for fn in {f.function for f in stack if f.name not in NATIVE and f.name not in ROOTS}:
            incl[fn] += w
    if not total:
        return {"samples": 0, "cpu_s": 0.0, "self": [], "inclusive": [], "by_package": [], "by_thread": []}

    def pct(c: dict[str, float], key: str, n: int | None = None) -> list[dict[str, Any]]:
        ranked = sorted(c.items(), key=lambda kv: -kv[1])[:n]
        return [{key: k, "percent": round(100 * v / total, 1)} for k, v in ranked]

    return {"samples": samples, "cpu_s": round(total, 2), "self": pct(self_t, "function", top),
            "inclusive": pct(incl, "function", top), "by_package": pct(buckets, "package"),
            "by_thread": pct(threads, "thread")}


def finish(started: list[tuple[str, Path, subprocess.Popen[bytes]]], timeout_s: float) -> dict[str, Any]:
    """Wait for every py-spy, read what they wrote, and summarise all processes together."""
    stacks: list[tuple[list[Frame], float]] = []
    files, errors = [], []
    for name, out, proc in started:
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if not out.exists():
            errors.append(f"{name}: py-spy wrote nothing: {err.decode(errors='replace').strip()[-300:]}")
            continue
        files.append(str(out))
        stacks.extend(read_speedscope(json.loads(out.read_text())))
    return {**summarise(stacks), "files": files, "errors": errors}
