"""Requests in flight, on disk: what a killed translator was serving still gets its metering event.

Each admitted request appends ``+<event>`` to the worker's in-flight file (the event as a line,
``core/event.py``; the previous version wrote JSON, read all the same): the metering event the
request gets should it never finish (status 0, cut short, not complete; usage and cost as
``billing.reaped_holds`` says: nothing, or its estimated prompt). Once its real event is recorded
it appends ``-<event id>``. A process killed with SIGKILL leaves the requests it was serving
open in the file; the next process of the same worker (same ``--listen``, so the same file) reads
them at start, before it serves, and records those events (``recover``). The settler applies an
event once, so a request whose real event did reach the spool is not charged twice.

Cost on the request path: two ``os.write`` calls, no fsync (a killed process loses nothing the
kernel holds). The file is rewritten with only the open requests once it passes ``compact_bytes``,
so it stays small however long the process runs.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

from core import event
from core.event import MeteringEvent

log = structlog.get_logger("tokengate.metering")


class Inflight:
    def __init__(self, path: str | Path, *, compact_bytes: int = 1 << 20) -> None:
        self.path = Path(path)
        self._compact_bytes = compact_bytes
        self._open: dict[str, bytes] = {}  # event id -> its "+" line
        self._fd = -1
        self._size = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"Inflight({self.path}, open={len(self._open)})"

    def recover(self) -> list[MeteringEvent]:
        """The events of the requests an earlier process left open (it died serving them); then
        starts this process's file afresh. Call once, before serving."""
        left: dict[str, MeteringEvent] = {}
        with contextlib.suppress(FileNotFoundError):
            for n, line in enumerate(self.path.read_bytes().split(b"\n")):
                if line.startswith(b"+"):
                    try:
                        ev = event.from_line(line[1:])
                    except event.BadEvent:
                        ev = None
                    if ev is None or not ev.event_id:
                        log.error("inflight_line_unreadable", path=str(self.path), line=n)  # cut by the kill
                        continue
                    left[ev.event_id] = ev
                elif line.startswith(b"-"):
                    left.pop(line[1:].decode(errors="replace"), None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reopen(b"")
        if left:
            log.warning("inflight_recovered", path=str(self.path), requests=len(left))
        return list(left.values())

    def started(self, event_id: str, ev: MeteringEvent) -> None:
        """A request was admitted; ``ev`` is what it is metered as should it never finish."""
        line = b"+" + event.line(ev.SerializeToString())
        self._open[event_id] = line
        self._write(line)

    def ended(self, event_id: str) -> None:
        """The request's own event is recorded."""
        if self._open.pop(event_id, None) is None:
            return
        self._write(b"-" + event_id.encode() + b"\n")
        if self._size > self._compact_bytes:
            self._reopen(b"".join(self._open.values()))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            return
        try:
            self._size += os.write(self._fd, data)
        except OSError as exc:  # a full disk: the request is still served and metered when it ends
            self.failures += 1
            if self.failures == 1 or self.failures % 1000 == 0:
                log.error("inflight_write_failed", path=str(self.path), error=str(exc), failures=self.failures)

    def _reopen(self, content: bytes) -> None:
        """Replace the file by ``content`` (written aside, then renamed over it: never half a file)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
            if content:
                os.write(fd, content)
            os.replace(tmp, self.path)
        except OSError as exc:
            self.failures += 1
            log.error("inflight_write_failed", path=str(self.path), error=str(exc), failures=self.failures)
            return
        self.close()
        self._fd, self._size = fd, len(content)
