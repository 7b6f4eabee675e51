"""Starting, restarting and stopping child processes so that none is ever left behind.

Each child runs in its own session (a terminal's Ctrl-C reaches only us, and we
stop children in a fixed order) and is asked by the kernel to die with its
parent (``PR_SET_PDEATHSIG``), so even a killed supervisor leaves nothing running.

Supervision: while someone calls ``Supervisor.supervise`` (``watch`` does, in a
loop), a child that dies is started again with the same argv, environment and
log file after a back-off (``Backoff``: 0.5 s doubling to 30 s, afresh once a
child stayed up 30 s). Each death and each restart is logged (``process_exited``,
``process_restarted``) and counted in ``tokengate_restarts_total{process}``,
written into the translators' Prometheus multiprocess directory when there is one,
so the worker serving ``/metrics`` reports it. ``stop_all`` ends supervision
before it stops anyone, so a child stopped on purpose is never started again.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog
from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key

log = structlog.get_logger("tokengate.supervisor")

_PR_SET_PDEATHSIG = 1
try:  # looked up here, not in the child: no dynamic loading between fork and exec
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


# Preferred: util-linux's setpriv sets the parent-death signal and execs the command, so no Python
# runs between fork and exec (a preexec_fn can deadlock there when other threads hold a lock at the
# fork: seen once as a CI hang in Popen). Essential on Debian; the preexec_fn is the fallback.
_SETPRIV = shutil.which("setpriv")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # The kernel signals the child when the *thread* that forked it ends: children are started
    # from the main thread, and restarted from it or from the thread of watch_in_background,
    # which stop_all ends only after it stopped them.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class StartError(RuntimeError):
    """A child did not come up; the message says which and where its log is."""


@dataclass(frozen=True)
class Backoff:
    """How long a dead child waits before it is started again."""

    first_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 30.0  # a child that stayed up this long starts again at first_s

    def delay(self, attempt: int) -> float:
        """The wait before restart number ``attempt`` (1, 2, …) of a run of quick deaths."""
        return float(min(self.max_s, self.first_s * 2 ** (attempt - 1)))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None
    stop_signal: int = signal.SIGTERM
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # on top of ours
    cwd: Path | None = None
    restart: bool = True  # started again when it dies (while supervised)
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0  # how many times it was started again
    attempt: int = 0  # deaths in a row, each within Backoff.reset_after_s of its start
    restart_at: float | None = None  # dead and waiting: when it is started again

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class _RestartCounter:
    """``tokengate_restarts_total{process}`` as a prometheus_client multiprocess counter file of ours,
    summed with the workers' files by the worker that serves ``/metrics``. Our file outlives any
    worker, so restarts stay counted whichever worker dies."""

    NAME = "tokengate_restarts"
    HELP = "Child processes started again by the supervisor after they died, by process"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: MmapedDict | None = None
        self._counts: dict[str, int] = {}

    def declare(self, process: str) -> None:
        """The series at 0, so that it exists before the first restart."""
        if process not in self._counts:
            self._write(process, 0)

    def inc(self, process: str) -> None:
        self._write(process, self._counts.get(process, 0) + 1)

    def _write(self, process: str, count: int) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = MmapedDict(str(self.directory / f"counter_{os.getpid()}.db"))  # type: ignore[no-untyped-call]
        key = mmap_key(self.NAME, f"{self.NAME}_total", ["process"], [process], self.HELP)
        self._file.write_value(key, float(count), 0.0)  # type: ignore[no-untyped-call]
        self._counts[process] = count

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[no-untyped-call]
            self._file = None
        self._counts.clear()


@dataclass
class Supervisor:
    log_dir: Path | None = None
    metrics_dir: Path | None = None  # the workers' PROMETHEUS_MULTIPROC_DIR: restarts are counted there
    backoff: Backoff = field(default_factory=Backoff)
    children: list[Child] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _stopping: bool = field(default=False, init=False)
    _watcher: threading.Thread | None = field(default=None, init=False, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _counter: _RestartCounter | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metrics_dir is not None:
            self._counter = _RestartCounter(self.metrics_dir)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        restart: bool = True,
    ) -> Child:
        with self._lock:
            child = Child(name, self._spawn(name, argv, env or {}, cwd), self._log_path(name), stop_signal,
                          list(argv), dict(env or {}), cwd, restart)
            self.children.append(child)
            if restart and self._counter is not None:
                self._counter.declare(name)
            return child

    def _log_path(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None) -> subprocess.Popen[bytes]:
        out: IO[bytes] | None = None  # no log_dir: the child writes to our stdout/stderr
        if (log_path := self._log_path(name)) is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        try:
            return subprocess.Popen(
                [_SETPRIV, "--pdeathsig", "TERM", "--", *argv] if _SETPRIV else argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                env={**os.environ, **env},
                cwd=cwd,
                start_new_session=True,
                preexec_fn=None if _SETPRIV else _die_with_parent,  # noqa: PLW1509 - a cached prctl call only
            )
        finally:
            if out is not None:
                out.close()

    def wait_until(self, child: Child, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise StartError(f"{child.name} exited with {child.proc.returncode} before {what}.\n"
                                 f"{child.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise StartError(f"{child.name} was not {what} after {timeout:g}s.\n{child.log_tail()}")

    # -- supervision ----------------------------------------------------------------

    def supervise(self) -> None:
        """One pass: schedule the restart of each child that died, start those whose wait is over."""
        with self._lock:
            if self._stopping:
                return
            now = time.monotonic()
            for child in self.children:
                if not child.restart or child.alive():
                    continue
                if child.restart_at is None:
                    self._exited(child, now)
                elif now >= child.restart_at:
                    self._restart(child, now)

    def _exited(self, child: Child, now: float) -> None:
        up_s = now - child.started_at
        if up_s >= self.backoff.reset_after_s:
            child.attempt = 0
        child.attempt += 1
        delay = self.backoff.delay(child.attempt)
        child.restart_at = now + delay
        code = child.proc.returncode
        multiproc = child.env.get("PROMETHEUS_MULTIPROC_DIR")
        if multiproc:  # its live gauges go; its counters stay summed (what it counted happened)
            multiprocess.mark_process_dead(child.proc.pid, multiproc)  # type: ignore[no-untyped-call]
        log.warning("process_exited", process=child.name, pid=child.proc.pid, exit_code=code,
                    signal=_signal_name(-code) if code < 0 else None, up_s=round(up_s, 1),
                    attempt=child.attempt, restart_in_s=delay,
                    log=str(child.log_path) if child.log_path else None)

    def _restart(self, child: Child, now: float) -> None:
        try:
            child.proc = self._spawn(child.name, child.argv, child.env, child.cwd)
        except OSError as exc:  # the binary went away, a full disk…: try again later
            child.attempt += 1
            child.restart_at = now + self.backoff.delay(child.attempt)
            log.error("process_restart_failed", process=child.name, attempt=child.attempt, error=str(exc))
            return
        child.started_at, child.restart_at = now, None
        child.restarts += 1
        if self._counter is not None:
            self._counter.inc(child.name)
        log.warning("process_restarted", process=child.name, pid=child.proc.pid, attempt=child.attempt,
                    restarts=child.restarts)

    def _supervise_logged(self) -> None:
        try:
            self.supervise()
        except Exception:  # a bug here must not end supervision, nor stop the stack
            log.exception("supervisor_error")

    def watch(self, until: Callable[[], bool], interval: float = 0.1) -> None:
        """Supervise until ``until()`` is true (checked every ``interval``)."""
        while not until():
            self._supervise_logged()
            time.sleep(interval)

    def watch_in_background(self, interval: float = 0.1) -> None:
        """Supervise from a thread of ours until ``stop_all``."""
        if self._watcher is not None:
            return
        self._wake.clear()

        def loop() -> None:  # it must not end early: the children it restarted die with it
            while not self._wake.wait(interval):
                self._supervise_logged()

        self._watcher = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._watcher.start()

    # -- stopping -------------------------------------------------------------------

    def stop_all(self, timeout: float = 10.0) -> None:
        """End supervision, then stop children newest first (Envoy before translators before Redis)."""
        with self._lock:
            self._stopping = True  # nothing is restarted from here on
        for child in reversed(self.children):
            self._stop(child, timeout)
        self.children.clear()
        if self._watcher is not None:  # only now: the children it restarted die with its thread
            self._wake.set()
            self._watcher.join()
            self._watcher = None
        if self._counter is not None:
            self._counter.close()
        self._stopping = False

    @staticmethod
    def _stop(child: Child, timeout: float) -> None:
        if child.alive():
            try:
                child.proc.send_signal(child.stop_signal)
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
            except ProcessLookupError:
                pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


_GIVEN: set[int] = set()  # the ports free_port handed out in this process


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, and never one this process was given before: the kernel may hand a
    port just closed out again, and a config given the same port twice fails to start (two listeners on it)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
