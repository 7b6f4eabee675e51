"""The metering spool (translator/spool.py): on disk from record to Redis, adopted by the next process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from core import event, store
from core.event import MeteringEvent
from tokengate.procs import free_port
from translator.metering import Meter
from translator.spool import Spool, default_root, worker_dir


def ev(i: int) -> MeteringEvent:
    return MeteringEvent(version=event.VERSION, event_id=f"e{i}", request_id=str(i), cost_nano=1000)


def line(i: int) -> bytes:
    """Event ``i`` as the Meter writes it to the spool."""
    return event.line(ev(i).SerializeToString())


def on_disk(d: Path) -> list[bytes]:
    """Every line of every segment in ``d``, oldest segment first."""
    return [ln for p in sorted(d.glob("*.seg")) for ln in p.read_bytes().splitlines() if ln]


def opened(d: Path, **kw: Any) -> Spool:
    sp = Spool(d, **kw)
    sp.open()
    return sp


def die(sp: Spool) -> None:
    """What SIGKILL does to a spool: its files are closed (unlocked) as they are, nothing deleted."""
    for seg in (*sp._segments, *sp.backlog):
        if seg.fd >= 0:
            os.close(seg.fd)


@pytest.mark.parametrize(("root", "listen", "expected"), [
    ("/s", "unix:/run/tg/translator-0.sock", "/s/translator-0"),
    ("/s", "127.0.0.1:9000", "/s/127.0.0.1_9000"),
    ("/s", "unix:/run/../x y.sock", "/s/x_y"),
], ids=["unix-socket", "tcp", "odd-characters"])
def test_each_worker_has_a_directory_named_after_its_listen_address(root: str, listen: str, expected: str) -> None:
    """A restarted worker listens where it did, so it finds its predecessor's spool."""
    assert Path(expected) == worker_dir(root, listen)


def test_without_a_configured_directory_the_spool_sits_beside_the_socket() -> None:
    """Unix sockets: <socket dir>/spool; TCP: var/spool."""
    assert (Path("/run/tg/spool"), Path("var/spool")) == (default_root("unix:/run/tg/translator-0.sock"),
                                                          default_root("127.0.0.1:9000"))


def test_an_event_is_on_disk_as_soon_as_it_is_appended(tmp_path: Path) -> None:
    """append() writes the line through to the file (no buffer in the process)."""
    sp = opened(tmp_path)
    for i in range(3):
        assert sp.append(line(i))
    assert [line(i).rstrip() for i in range(3)] == on_disk(tmp_path)


def test_events_in_redis_leave_the_spool(tmp_path: Path) -> None:
    """Confirmed and drained: the active segment is emptied in place; nothing is left to replay."""
    sp = opened(tmp_path)
    for i in range(3):
        sp.append(line(i))
    sp.confirmed(2)
    sp.drained()  # not drained: one event is still only in memory and on disk
    assert 3 == len(on_disk(tmp_path))
    sp.confirmed(1)
    sp.drained()
    assert ([], 0, 1) == (on_disk(tmp_path), sp.bytes, len(list(tmp_path.glob("*.seg"))))
    sp.close()
    assert [] == list(tmp_path.iterdir()), "a clean close leaves nothing behind"


def test_rotation_bounds_the_spool_while_the_writer_never_catches_up(tmp_path: Path) -> None:
    """Memory never empties (Redis always a batch behind): segments rotate at segment_bytes and the
    confirmed ones are deleted, so the disk holds about two segments, not the whole history."""
    def line(i: int) -> bytes:  # all of one size (base64 grows in steps): twenty to a segment
        return event.line(MeteringEvent(event_id=f"e{i:04d}").SerializeToString())

    size = len(line(0))
    sp = opened(tmp_path, segment_bytes=20 * size)
    most_files = most_bytes = 0
    for i in range(1000):
        sp.append(line(i))
        if i % 10 == 9:
            sp.confirmed(10 if i > 10 else 0)  # ten recorded, ten confirmed: always ten behind
        most_files = max(most_files, len(list(tmp_path.glob("*.seg"))))
        most_bytes = max(most_bytes, sum(p.stat().st_size for p in tmp_path.glob("*.seg")))
    assert most_files <= 2
    assert most_bytes <= 2 * 20 * size
    assert [line(i).rstrip() for i in range(990, 1000)] == on_disk(tmp_path)[-10:]


def test_a_new_process_adopts_what_a_dead_one_left_and_deletes_it_once_replayed(tmp_path: Path) -> None:
    """A killed process's segment (unlocked by the kernel) is adopted at the next start, whole."""
    first = opened(tmp_path)
    for i in range(3):
        first.append(line(i))
    first.confirmed(1)  # even an event Redis has is replayed: the settler applies it once
    die(first)
    nxt = opened(tmp_path)
    assert 1 == len(nxt.backlog)
    seg = nxt.backlog[0]
    assert [line(i).rstrip() for i in range(3)] == nxt.replay_lines(seg)
    nxt.replayed(seg)
    assert (0, []) == (len(nxt.backlog), on_disk(tmp_path))


def test_a_live_process_keeps_its_segments(tmp_path: Path) -> None:
    """A segment flock'ed by a running process (the one a new process is replacing) is left alone."""
    live = opened(tmp_path)
    live.append(line(0))
    other = opened(tmp_path)
    assert 0 == len(other.backlog)
    die(live)
    assert 1 == other.adopt(), "once its writer is gone it is adopted (the writer rescans)"


def test_a_truncated_last_line_is_skipped_with_an_error(tmp_path: Path) -> None:
    """Killed mid-write: the whole lines are replayed, the cut one is logged, nothing raises."""
    (tmp_path / f"{1:020d}-1.seg").write_bytes(line(0) + b"not an event\n" + line(2) + line(3)[:-4])
    with capture_logs() as logs:
        sp = opened(tmp_path)
        lines = sp.replay_lines(sp.backlog[0])
    assert [line(0).rstrip(), line(2).rstrip()] == lines
    bad = [(e["line"], e["last"]) for e in logs if e["event"] == "metering_spool_bad_line"]
    assert [(2, False), (4, True)] == bad


def test_a_write_torn_part_way_does_not_swallow_the_next_event(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A short write (a disk filling up) leaves a fragment: the next event starts on a line of its own."""
    sp = opened(tmp_path)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:10]))
    with capture_logs():
        assert not sp.append(line(0))
    monkeypatch.setattr(os, "write", real_write)
    assert sp.append(line(1))
    die(sp)
    with capture_logs():
        nxt = opened(tmp_path)
        assert [line(1).rstrip()] == nxt.replay_lines(nxt.backlog[0])


def test_a_full_spool_is_counted_and_logged_and_recovers(tmp_path: Path) -> None:
    """Past max_bytes an event is refused by the spool (the Meter keeps it in memory): counted, logged
    once a second rather than per event; once Redis has caught up the spool takes events again."""
    size = len(line(0))
    sp = opened(tmp_path, max_bytes=3 * size)
    with capture_logs() as logs:
        written = [sp.append(line(i)) for i in range(10)]
    assert [True] * 3 + [False] * 7 == written
    assert 7 == sp.write_failures
    assert 1 == sum(e["event"] == "metering_spool_write_failed" for e in logs)
    sp.confirmed(10)
    sp.drained()
    assert sp.append(line(10))


def test_graceful_close_with_redis_away_keeps_events_for_the_next_start(tmp_path: Path) -> None:
    """Stopping while Redis is unreachable: a warning with the count, the events stay on disk."""

    async def stop_with_redis_away() -> list[MutableMapping[str, Any]]:
        r = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
        meter = Meter(r, spool=opened(tmp_path))
        meter.start()
        for i in range(3):
            meter.record(ev(i))
        with capture_logs() as logs:
            await meter.close(wait_s=0.3)
        await r.aclose()
        return logs

    logs = asyncio.run(stop_with_redis_away())
    assert [("warning", 3)] == [(e["log_level"], e["pending"]) for e in logs if e["event"] == "metering_left_in_spool"]
    assert not [e for e in logs if e["log_level"] == "error"]
    nxt = opened(tmp_path)
    assert [ev(i) for i in range(3)] == [event.from_line(x) for x in nxt.replay_lines(nxt.backlog[0])]


def test_a_full_memory_buffer_keeps_events_in_the_spool(tmp_path: Path) -> None:
    """Past the buffer's capacity events are spilled to the spool only (counted), not dropped."""

    async def overflow() -> tuple[int, int, int]:
        r = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
        meter = Meter(r, spool=opened(tmp_path), capacity=2)
        with capture_logs():
            for i in range(5):
                meter.record(ev(i))
        await r.aclose()
        return meter.pending, meter.spilled, meter.dropped

    assert (2, 3, 0) == asyncio.run(overflow())
    assert [f"e{i}" for i in range(5)] == [event.from_line(x).event_id for x in on_disk(tmp_path)]


async def until(cond: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - plain state, no event to wait on
            await asyncio.sleep(0.005)


def test_the_writer_replays_what_an_earlier_process_left_and_the_spool_ends_empty(tmp_path: Path) -> None:
    """Adopted events and new ones all reach Redis; afterwards the worker's spool holds nothing."""
    dead = opened(tmp_path)
    for i in range(3):
        dead.append(line(i))
    die(dead)

    async def next_start() -> list[MeteringEvent]:
        port = free_port()  # Redis is away when the new process starts: the backlog waits, nothing is lost
        r = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
        sp = opened(tmp_path)
        meter = Meter(r, spool=sp)
        meter.start()
        with capture_logs() as logs:
            for i in range(3, 5):
                meter.record(ev(i))
            await until(lambda: any(e["event"] == "metering_retry" for e in logs))
            assert (2, 1) == (meter.pending, len(sp.backlog))
            server = await asyncio.create_subprocess_exec(
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(tmp_path), stdout=asyncio.subprocess.DEVNULL)
            try:
                await until(lambda: meter.pending == 0 and not sp.backlog, within=15)
                await until(lambda: on_disk(tmp_path) == [])
                await meter.close()
                entries = await r.xrange(store.METERING_STREAM)
            finally:
                await r.aclose()
                server.terminate()
                await server.wait()
        return [event.from_entry(fields) for _, fields in entries]

    stream = asyncio.run(next_start())
    assert [f"e{i}" for i in range(5)] == sorted(e.event_id for e in stream)
    assert all(e == ev(int(e.event_id[1:])) for e in stream)
    assert [] == list(tmp_path.iterdir())


def test_the_backlog_names_its_event_ids(tmp_path: Path) -> None:
    """A restarted worker skips a recovered in-flight request whose own event its predecessor spooled
    (the previous version's JSON lines included)."""
    first = opened(tmp_path)
    first.append(orjson.dumps({"event_id": "e1", "account": "a"}) + b"\n")
    first.append(line(2))
    die(first)
    assert {"e1", "e2"} == opened(tmp_path).backlog_event_ids()


def test_a_segment_of_the_previous_version_replays_as_it_was_written(tmp_path: Path) -> None:
    """JSON lines (metering event version 0) go back to the stream as version 0's entries ("event": the
    JSON); a cut JSON line is skipped as before."""
    old = orjson.dumps({"event_id": "e1", "account": "a", "cost_nano": 5})
    (tmp_path / f"{1:020d}-1.seg").write_bytes(old + b"\n" + line(2) + old[:20] + b"\n")
    with capture_logs() as logs:
        sp = opened(tmp_path)
        lines = sp.replay_lines(sp.backlog[0])
    assert [old, line(2).rstrip()] == lines
    assert [{"event": old}, {"pb": ev(2).SerializeToString()}] == [event.entry_of_line(x) for x in lines]
    assert [3] == [e["line"] for e in logs if e["event"] == "metering_spool_bad_line"]
