"""The in-flight file: what a killed translator was serving is found by the next one."""

from __future__ import annotations

from pathlib import Path

import orjson

from core import event
from core.event import MeteringEvent
from translator.inflight import Inflight


def _ev(i: int) -> MeteringEvent:
    return MeteringEvent(version=event.VERSION, event_id=f"e{i}", account="a", status=0, cut_short=True)


def test_a_new_process_recovers_only_the_requests_left_open(tmp_path: Path) -> None:
    """Started and ended: forgotten; started only (the process died): recovered once, then the file is fresh."""
    first = Inflight(tmp_path / "w" / "inflight")
    assert [] == first.recover()
    for i in range(3):
        first.started(f"e{i}", _ev(i))
    first.ended("e1")
    first.ended("e1")  # twice: nothing more
    # killed here: no close
    second = Inflight(tmp_path / "w" / "inflight")
    assert ["e0", "e2"] == sorted(e.event_id for e in second.recover())
    assert [] == Inflight(tmp_path / "w" / "inflight").recover()


def test_a_line_cut_by_the_kill_is_skipped(tmp_path: Path) -> None:
    """The last write half done: the whole lines before it still count."""
    inf = Inflight(tmp_path / "inflight")
    inf.recover()
    inf.started("e0", _ev(0))
    inf.started("e1", _ev(1))
    with (tmp_path / "inflight").open("ab") as f:
        f.write(b"+" + event.line(_ev(2).SerializeToString())[:-4])
    assert ["e0", "e1"] == sorted(e.event_id for e in Inflight(tmp_path / "inflight").recover())


def test_a_file_of_the_previous_version_is_read(tmp_path: Path) -> None:
    """JSON lines (metering event version 0), cut one included, and this version's lines after a restart."""
    old = orjson.dumps({"event_id": "e0", "account": "a", "status": 0, "cut_short": True, "finish": None})
    (tmp_path / "inflight").write_bytes(b"+" + old + b"\n+" + old.replace(b"e0", b"e1") + b"\n-e1\n+" + old[:15])
    [recovered] = Inflight(tmp_path / "inflight").recover()
    assert MeteringEvent(event_id="e0", account="a", cut_short=True) == recovered  # version 0: no version set


def test_the_file_stays_small_and_keeps_what_is_open(tmp_path: Path) -> None:
    """Thousands of requests through: the file is rewritten with the open ones past compact_bytes."""
    inf = Inflight(tmp_path / "inflight", compact_bytes=4096)
    inf.recover()
    keep = _ev(-1)
    keep.event_id = "keep"
    inf.started("keep", keep)
    for i in range(5000):
        inf.started(f"e{i}", _ev(i))
        inf.ended(f"e{i}")
    assert (tmp_path / "inflight").stat().st_size < 8192
    assert [MeteringEvent(version=event.VERSION, event_id="keep", account="a", cut_short=True)] == \
        Inflight(tmp_path / "inflight").recover()


def test_a_failed_write_is_counted_not_raised(tmp_path: Path) -> None:
    """A full disk must not fail the request: the write is counted and logged."""
    inf = Inflight(tmp_path / "inflight")
    inf.recover()
    inf.close()
    inf._fd = 2**20  # no such descriptor: os.write fails like a broken disk would
    inf.started("e0", _ev(0))
    inf.ended("e0")
    assert 2 == inf.failures
