"""The supervisor: a child that dies is started again (same argv, back-off, logged, counted); stopping stops all."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from structlog.testing import capture_logs

from tokengate.procs import Backoff, Child, Supervisor, free_port

FAST = Backoff(first_s=0.05, max_s=0.2, reset_after_s=5.0)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} after {timeout:g}s"
        time.sleep(0.01)


def restarts_metric(metrics_dir: Path) -> dict[str, float]:
    """tokengate_restarts_total by process, as the worker serving /metrics would report it."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(metrics_dir))  # type: ignore[no-untyped-call]
    return {s.labels["process"]: s.value for m in registry.collect() for s in m.samples
            if s.name == "tokengate_restarts_total"}


def test_backoff_doubles_from_half_a_second_to_thirty() -> None:
    """0.5 s, 1, 2, 4, 8, 16, then 30 s for every later attempt."""
    assert [0.5, 1, 2, 4, 8, 16, 30, 30] == [Backoff().delay(n) for n in range(1, 9)]


def test_a_child_that_dies_is_started_again_with_the_same_argv_env_and_log(tmp_path: Path) -> None:
    """Killed with SIGKILL: logged with its exit code and attempt, started again, counted in the metric."""
    sup = Supervisor(tmp_path / "logs", metrics_dir=tmp_path / "metrics", backoff=FAST)
    argv = [sys.executable, "-c", "import os, time; print('up', os.environ['X_TG'], flush=True); time.sleep(60)"]
    child = sup.start("sleeper", argv, env={"X_TG": "same env"})
    try:
        sup.wait_until(child, lambda: "up same env" in child.log_tail(), 10, "up")
        sup.watch_in_background(interval=0.01)
        first = child.proc.pid
        with capture_logs() as logs:
            child.proc.kill()
            wait_for(lambda: child.restarts == 1 and child.alive(), what="restart")
        assert first != child.proc.pid
        assert argv == child.argv and child.proc.args[-len(argv):] == argv
        exited, restarted = ({k: v for k, v in e.items() if k not in ("pid", "up_s", "log", "log_level")}
                             for e in logs)
        assert {"event": "process_exited", "process": "sleeper", "exit_code": -9, "signal": "SIGKILL",
                "attempt": 1, "restart_in_s": 0.05} == exited
        assert {"event": "process_restarted", "process": "sleeper", "attempt": 1, "restarts": 1} == restarted
        wait_for(lambda: (tmp_path / "logs/sleeper.log").read_text().count("up same env") == 2, what="second line")
        assert {"sleeper": 1.0} == restarts_metric(tmp_path / "metrics")
    finally:
        sup.stop_all()


def test_quick_deaths_back_off_and_a_long_run_starts_the_back_off_afresh(tmp_path: Path) -> None:
    """Each death within reset_after_s of its start doubles the wait (up to max_s); after a long run it is first_s."""
    sup = Supervisor(tmp_path / "logs", backoff=FAST)
    flag = tmp_path / "long"
    # Dies at once, until the flag file exists: then it stays up for 0.6 s before it dies.
    code = f"import os, time; time.sleep(0.6 if os.path.exists({str(flag)!r}) else 0); raise SystemExit(3)"
    child = sup.start("crasher", [sys.executable, "-c", code])
    delays: list[float] = []
    try:
        with capture_logs() as logs:
            sup.watch_in_background(interval=0.01)
            wait_for(lambda: child.restarts >= 4, what="four restarts")
            sup.backoff = Backoff(first_s=0.05, max_s=0.2, reset_after_s=0.5)
            flag.touch()
            n = child.restarts
            wait_for(lambda: sum(e["event"] == "process_exited" and e["up_s"] >= 0.5 for e in logs) >= 1
                     and child.restarts > n, what="a restart after a long run")
        delays = [e["restart_in_s"] for e in logs if e["event"] == "process_exited"]
        codes = {e["exit_code"] for e in logs if e["event"] == "process_exited"}
    finally:
        sup.stop_all()
    assert [0.05, 0.1, 0.2, 0.2] == delays[:4]
    assert 0.05 == delays[-1], "after 0.6 s up, the back-off starts afresh"
    assert {3} == codes


def test_stop_all_stops_every_child_in_reverse_order_and_restarts_none(tmp_path: Path) -> None:
    """SIGTERM newest first; a child stopped on purpose is not started again; nothing is left running."""
    sup = Supervisor(tmp_path / "logs", backoff=FAST)
    order = tmp_path / "order"
    code = ("import signal, sys, time\n"
            "def bye(*_):\n"
            f"    open({str(order)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    children: list[Child] = []
    for name in ("first", "second", "third"):
        children.append(sup.start(name, [sys.executable, "-c", code, name]))
    for c in children:
        sup.wait_until(c, lambda c=c: "ready" in c.log_tail(), 10, "ready")  # type: ignore[misc]
    sup.watch_in_background(interval=0.01)
    with capture_logs() as logs:
        sup.stop_all()
    assert ["third", "second", "first"] == order.read_text().split()
    assert [] == [e for e in logs if e["event"].startswith("process_")]
    assert all(not c.alive() and c.restarts == 0 for c in children)
    assert [] == sup.children
    for c in children:
        with pytest.raises(ProcessLookupError):
            os.kill(c.proc.pid, 0)


def test_watch_returns_when_told_and_supervises_meanwhile(tmp_path: Path) -> None:
    """The loop `make run` and `tokengate translators` run: restarts while it runs, returns when asked."""
    sup = Supervisor(tmp_path / "logs", backoff=FAST)
    child = sup.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(child.proc.pid, signal.SIGKILL)
        with capture_logs():
            sup.watch(until=lambda: child.restarts == 1, interval=0.01)
        assert child.alive()
    finally:
        sup.stop_all()


def test_free_port_never_hands_out_a_port_twice() -> None:
    """The kernel gives a port just closed out again: 2,000 draws from its ~28,000 ephemeral ports repeat
    one about 140 times here (a stack whose config took two equal ports failed to start: "duplicate address")."""
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
