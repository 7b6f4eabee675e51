"""What each process costs: CPU seconds from /proc/<pid>/stat, memory from /proc/<pid>/status.

``Watch`` names the processes of a scenario (a name may cover a process and its
descendants, e.g. LiteLLM's server and the workers it forks); ``snapshot`` reads
utime+stime of every one, and ``cpu_delta`` subtracts two snapshots. The load
generator is not watched here: its CPU comes from ``resource.RUSAGE_CHILDREN``
around its run (it is our child and exits before we read).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def parse_stat(text: str) -> tuple[int, float]:
    """(ppid, utime+stime seconds) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may hold spaces, so fields
    are counted after the last ')'.
    """
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    ppid = int(rest[1])
    ticks = int(rest[11]) + int(rest[12])
    return ppid, ticks / _TICK


def parse_status_kib(text: str, name: str) -> int | None:
    """A ``kB`` field (VmRSS, VmHWM, ...) of /proc/<pid>/status, in KiB."""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # the process is gone
        return None


def cpu_seconds(pid: int) -> float | None:
    text = _read(PROC / str(pid) / "stat")
    return parse_stat(text)[1] if text else None


def memory_kib(pid: int, name: str = "VmRSS") -> int | None:
    text = _read(PROC / str(pid) / "status")
    return parse_status_kib(text, name) if text else None


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text:
            children.setdefault(parse_stat(text)[0], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


@dataclass
class Watch:
    """Named processes whose CPU a scenario reports; ``tree`` names include descendants."""

    pids: dict[str, int] = field(default_factory=dict)
    tree: set[str] = field(default_factory=set)

    def add(self, name: str, pid: int, *, tree: bool = False) -> None:
        self.pids[name] = pid
        if tree:
            self.tree.add(name)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            members = descendants(pid) if name in self.tree else [pid]
            out[name] = sum(cpu_seconds(p) or 0.0 for p in members)
        return out


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}


def per_thousand(cpu: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU seconds per 1,000 requests for each process."""
    if requests <= 0:
        return {}
    return {name: round(s * 1000 / requests, 4) for name, s in cpu.items()}


def parse_proc_stat_busy(text: str) -> float:
    """Busy seconds of the whole machine (all CPUs) from the text of /proc/stat."""
    fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal_and_guest = sum(fields[7:]) if len(fields) > 7 else 0  # not work done here
    return (sum(fields) - idle - steal_and_guest) / _TICK


def machine_busy() -> float:
    return parse_proc_stat_busy((PROC / "stat").read_text())


def children_cpu() -> float:
    """User+system seconds of every child this process has waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextmanager
def child_cpu(out: dict[str, float], name: str) -> Iterator[None]:
    """Adds to ``out[name]`` the CPU of the children reaped inside the block."""
    start = children_cpu()
    try:
        yield
    finally:
        out[name] = round(children_cpu() - start, 3)
