"""The metering spool: every event a translator records is in a local file until Redis has it.

One directory per translator worker (``spool_dir``: named after its ``--listen``
address, so a restarted worker finds what its predecessor left), holding
*segments*, files of one event per line (``core/event.py``: base64 of the
serialized event, ending in "."; a segment left by the previous version holds JSON
objects, replayed as they are) named so that they sort oldest first::

    <spool dir>/<worker>/<time_ns>-<pid>.seg

- ``append`` (once per request) is one ``os.write`` to the active segment, opened
  ``O_APPEND``. No fsync: a killed process loses nothing the kernel holds (a machine
  crash may lose the last seconds; ``fsync_s`` bounds that, docs/billing.md).
- The Meter keeps the same events in memory, oldest first, and says when the ``n``
  oldest are in Redis (``confirmed``). A segment whose events are all in Redis is
  deleted; the active one is emptied in place (``drained``) or, past
  ``segment_bytes``, replaced by a new one: in steady state the spool is at most a
  segment or two, however long the process runs.
- Each segment is ``flock``ed by the process writing it (the kernel drops the lock
  when the process dies, even by SIGKILL). At start a process *adopts* the segments
  of its directory that nobody holds: what an earlier process left behind (killed,
  or stopped before Redis took everything). They go to ``backlog``, which the Meter
  replays into the stream and then deletes; the settler applies an event once,
  however often it arrives.
- Limits, never silent: past ``max_bytes``, or when a write fails (a full disk), the
  event stays in memory only, counted in ``write_failures`` and logged (at most once
  a second); the process keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from core import event

log = structlog.get_logger("tokengate.metering")

SUFFIX = ".seg"
SEGMENT_BYTES = 8 << 20  # ~10,000 events: a replay reads one at a time


@dataclass(eq=False)
class Segment:
    path: Path
    fd: int  # open and flock'ed by this process; -1: none (the file could not be made)
    size: int = 0
    unconfirmed: int = 0  # of its events in the Meter's memory, those not yet in Redis
    spilled: bool = False  # holds events that are not in memory (adopted, or memory was full): replay the file
    lines: list[bytes] | None = field(default=None, repr=False)  # replay: its events, read once
    sent: int = 0  # replay: how many of ``lines`` are in the stream


def worker_dir(root: str | Path, listen: str) -> Path:
    """This worker's spool directory under ``root``, named after its listen address
    (``unix:/run/translator-0.sock`` → ``translator-0``, ``127.0.0.1:9000`` → ``127.0.0.1_9000``)."""
    name = Path(listen.removeprefix("unix:")).stem if listen.startswith("unix:") else listen
    return Path(root) / (re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "translator")


def default_root(listen: str) -> Path:
    """Without ``translator.spool.dir``: ``spool/`` beside a Unix socket, else ``var/spool``."""
    if listen.startswith("unix:"):
        return Path(listen.removeprefix("unix:")).parent / "spool"
    return Path("var/spool")


class Spool:
    def __init__(self, directory: str | Path, *, segment_bytes: int = SEGMENT_BYTES,
                 max_bytes: int = 1 << 30) -> None:
        self.dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._max_bytes = max_bytes
        self._segments: deque[Segment] = deque()  # ours, oldest first; the last is the active one
        self._active = Segment(self.dir / "unopened", -1)  # until open(); or while no segment can be made
        self._segments.append(self._active)
        self.backlog: deque[Segment] = deque()  # to replay whole, oldest first
        self._bytes = 0  # on disk: our segments and the backlog
        self._torn = False  # the last write failed part-way: start the next on a line of its own
        self.write_failures = 0
        self._failures_logged = 0
        self._last_failure_log = 0.0

    # -- start and stop ---------------------------------------------------------------

    def open(self) -> None:
        """Make the directory, adopt what earlier processes left, start a segment."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.adopt()
        self._rotate()

    def adopt(self) -> int:
        """Take over the segments in the directory that no live process holds; how many hold events."""
        ours = {s.path for s in (*self._segments, *self.backlog)}
        found = 0
        for path in sorted(self.dir.iterdir()):
            if path in ours or path.suffix not in (SUFFIX, ".new"):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # deleted by its owner meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    raise FileNotFoundError(path)  # deleted by its owner after we opened it
            except (BlockingIOError, FileNotFoundError):  # a live process writes it, or it is gone
                os.close(fd)
                continue
            seg = Segment(path, fd, size=os.fstat(fd).st_size, spilled=True)
            self._bytes += seg.size
            if path.suffix != SUFFIX or not seg.size:  # empty (or made by a process that died naming it)
                self._unlink(seg)
                continue
            self.backlog.append(seg)
            found += 1
        if found:
            log.warning("metering_spool_adopted", segments=found, dir=str(self.dir))
        return found

    def close(self) -> None:
        """Release every file; a segment still holding events not in Redis stays for the next start."""
        for seg in self._segments:
            if seg.size == 0 or (seg.unconfirmed == 0 and not seg.spilled):
                self._unlink(seg)
            elif seg.fd >= 0:
                os.close(seg.fd)
        for seg in self.backlog:
            if seg.fd >= 0:
                os.close(seg.fd)
        self._segments.clear()
        self.backlog.clear()

    # -- the hot path -----------------------------------------------------------------

    def append(self, line: bytes, *, kept: bool = True) -> bool:
        """Write one event (``line`` ends with a newline); ``kept``: it is also in the Meter's memory.
        False when it could not be written (logged and counted)."""
        seg = self._active
        if kept:
            seg.unconfirmed += 1
        if self._torn:
            line = b"\n" + line
        try:
            if self._bytes >= self._max_bytes:
                raise OSError(f"spool full: {self._bytes} bytes, the limit is {self._max_bytes}")
            n = os.write(seg.fd, line)
        except OSError as exc:
            self._failed(exc)
            return False
        seg.size += n
        self._bytes += n
        if n != len(line):
            self._failed(OSError(f"short write: {n} of {len(line)} bytes"))
            return False
        self._torn = False
        if not kept:
            seg.spilled = True
        if seg.size >= self._segment_bytes:
            self._rotate()
        return True

    def _failed(self, exc: OSError, *, event: bool = True) -> None:
        if event:  # an event not written (else: a segment not made)
            self._torn = True
            self.write_failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= 1.0:
            log.error("metering_spool_write_failed", failures=self.write_failures,
                      since_last_log=self.write_failures - self._failures_logged, error=str(exc),
                      dir=str(self.dir), note="events are kept in memory only until the spool is writable")
            self._last_failure_log = now
            self._failures_logged = self.write_failures

    # -- progress -----------------------------------------------------------------------

    def confirmed(self, n: int) -> None:
        """The ``n`` oldest events kept in memory are in Redis: delete the segments that are done."""
        for seg in self._segments:
            take = min(n, seg.unconfirmed)
            seg.unconfirmed -= take
            n -= take
            if not n:
                break
        segs = self._segments
        while len(segs) > 1 and segs[0].unconfirmed == 0:
            self._retire(segs.popleft())

    def drained(self) -> None:
        """Memory is empty, everything in Redis: empty the active segment in place (one ftruncate),
        or start a new one when it holds events that were never in memory."""
        seg = self._active
        if seg.unconfirmed or not (seg.size or seg.fd < 0):
            return
        if seg.spilled or seg.fd < 0:
            self._rotate()
            return
        try:
            os.ftruncate(seg.fd, 0)
        except OSError as exc:
            log.error("metering_spool_truncate_failed", error=str(exc), path=str(seg.path))
            self._rotate()
            return
        self._bytes -= seg.size
        seg.size = 0
        self._torn = False

    def _rotate(self) -> None:
        """Start a new active segment. Made under a name adopt() leaves alone, locked, then named:
        no other process can adopt it before we hold it."""
        path = self.dir / f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        tmp = path.with_suffix(".new")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._failed(exc, event=False)
            return  # keep writing where we were (or nowhere: counted); drained() tries again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, path)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._failed(exc, event=False)
            return
        old = self._active
        self._active = Segment(path, fd)
        self._torn = False
        if old.fd < 0:  # the placeholder, or a segment never made: its kept events move along
            self._active.unconfirmed = old.unconfirmed
            with contextlib.suppress(ValueError):
                self._segments.remove(old)
        self._segments.append(self._active)
        segs = self._segments
        while len(segs) > 1 and segs[0].unconfirmed == 0:
            self._retire(segs.popleft())

    def _retire(self, seg: Segment) -> None:
        """A segment no longer written whose kept events are all in Redis."""
        if seg.spilled:
            self.backlog.append(seg)  # it holds events that were never in memory: replay the file
        else:
            self._unlink(seg)

    def _unlink(self, seg: Segment) -> None:
        """Delete, then unlock: nobody can adopt a segment between the two."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(seg.path)
        if seg.fd >= 0:
            os.close(seg.fd)
            seg.fd = -1
        self._bytes -= seg.size

    # -- replay -------------------------------------------------------------------------

    def backlog_event_ids(self) -> set[str]:
        """The ids of the events in the backlog (what an earlier process left), read once: the
        replay reuses the lines."""
        ids: set[str] = set()
        for seg in self.backlog:
            try:
                lines = self.replay_lines(seg)
            except OSError:
                continue
            ids.update(event.from_line(line).event_id for line in lines)
        return ids

    def replay_lines(self, seg: Segment) -> list[bytes]:
        """The events of a backlog segment, read once. A line that is no event (the last one cut
        short by a kill mid-write, or a write torn by a full disk) is logged and skipped."""
        if seg.lines is None:
            with open(seg.path, "rb") as f:
                data = f.read()
            lines = []
            parts = data.split(b"\n")
            for i, line in enumerate(parts):
                if not line:
                    continue
                try:
                    event.from_line(line)  # the settler dead-letters what it cannot apply; this is no event
                    ok = True
                except event.BadEvent:
                    ok = False
                if ok:
                    lines.append(line)
                else:
                    log.error("metering_spool_bad_line", path=str(seg.path), line=i + 1,
                              last=i == len(parts) - 1, head=line[:200].decode("utf-8", "replace"))
            seg.lines = lines
        return seg.lines

    def abandon(self, seg: Segment, exc: OSError) -> None:
        """A backlog segment that cannot be read: left where it is (unlocked, so adopted again later)."""
        log.error("metering_spool_unreadable", path=str(seg.path), error=str(exc))
        self.backlog.remove(seg)
        if seg.fd >= 0:
            os.close(seg.fd)
            seg.fd = -1
        self._bytes -= seg.size

    def replayed(self, seg: Segment) -> None:
        """Every event of the backlog's first segment is in the stream: delete it."""
        self.backlog.remove(seg)
        log.info("metering_spool_replayed", events=len(seg.lines or ()), path=str(seg.path))
        self._unlink(seg)

    # -- durability against a machine crash (optional) -------------------------------

    async def sync(self) -> None:
        """fdatasync our segments, in a thread (the event loop does not wait on the disk)."""
        for seg in list(self._segments):
            if seg.fd >= 0 and seg.size:
                fd = os.dup(seg.fd)  # the segment may be deleted and closed meanwhile
                try:
                    await asyncio.to_thread(os.fdatasync, fd)
                finally:
                    os.close(fd)

    @property
    def bytes(self) -> int:
        return self._bytes
