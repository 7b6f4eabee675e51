"""Upgrading across metering event versions: what the previous version wrote is still settled, exactly.

The previous version (metering event version 0, tests/fixtures/metering_v0/) wrote JSON: on the
``tg:metering`` stream, in its spool segments and in its in-flight file, and the last two survive
an upgrade on the worker's disk. Each place is checked here with the files it really wrote, through
the code that reads them in production: the settler's ``apply`` for the stream, and a translator of
this version starting (``translator.main.serve``, in process, no Envoy) where a worker of the
previous one died. A newer event (a field this version does not know) is read in every place too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from core import event, store
from core.billing.ops import Billing
from core.event import MeteringEvent
from settler.service import DEAD_LETTERS, GROUP, Settler
from tests.harness import gateway_config, write_config
from translator import main as translator_main
from translator.inflight import Inflight
from translator.metering import Meter
from translator.spool import Spool, worker_dir

V0 = Path(__file__).resolve().parents[1] / "fixtures" / "metering_v0"
SPOOL = (V0 / "spool.seg").read_bytes()
INFLIGHT = (V0 / "inflight").read_bytes()
HOLDS: dict[str, int] = json.loads((V0 / "holds.json").read_text())
ANSWERED, CUT, UNFINISHED = HOLDS  # the three requests, in the order they were admitted
ACCOUNT = "acme"
CREDIT = 100 * 10**9  # nano-USD
# What each request costs: as the previous version's translator computed it (nano-USD).
COST = {ANSWERED: 6_150_000, CUT: 195_000, UNFINISHED: 185_000}
FIXTURE_DAY = dt.datetime.fromtimestamp(json.loads(SPOOL.splitlines()[0])["ts"], dt.UTC).date()


@contextlib.asynccontextmanager
async def account(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An empty Redis with the fixtures' account funded and the holds its admissions placed."""
    r = aioredis.Redis.from_url(redis_url)
    try:
        await r.flushdb()
        await Billing(r).credit(ACCOUNT, CREDIT, kind="topup", ref="upgrade-test", reason="test")
        for hold_id, amount in HOLDS.items():
            await r.hset(store.holds(ACCOUNT), hold_id, amount)
            await r.zadd(store.hold_expiries(ACCOUNT), {hold_id: 4_000_000_000})
            await r.hincrby(store.account_key(ACCOUNT), "held", amount)
        yield r
    finally:
        await r.aclose()


async def settle(r: aioredis.Redis) -> Settler:
    """Everything on the stream, through the settler's own reading of each entry."""
    settler = Settler(r, consumer="upgrade-test")
    await settler.ensure_group()
    while reply := await r.xreadgroup(GROUP, settler.consumer, {store.METERING_STREAM: ">"}, count=100):
        for _, entries in reply:
            await settler.apply(entries)
    return settler


async def outcome(r: aioredis.Redis) -> dict[str, Any]:
    b = Billing(r)
    balance, held = await b.balance(ACCOUNT)
    charges = {e["ref"]: -int(e["amount"]) for e in await b.ledger(ACCOUNT, 100) if e["type"] == "charge"}
    [row] = await b.usage(ACCOUNT, FIXTURE_DAY, FIXTURE_DAY)
    return {"balance": balance, "held": held, "charges": charges, "usage": row,
            "dead": await r.xlen(DEAD_LETTERS)}


def usage_row(**counts: int) -> dict[str, Any]:
    row = {"date": FIXTURE_DAY.isoformat(), "model": "gpt-test", "requests": 0, "input": 0, "cache_read": 0,
           "cache_write": 0, "output": 0, "reasoning": 0, "cost": 0, "failed": 0, "reaped": 0}
    return {**row, **counts}


ANSWERED_AND_CUT = {
    "balance": CREDIT - COST[ANSWERED] - COST[CUT], "held": HOLDS[UNFINISHED],
    "charges": {ANSWERED: COST[ANSWERED], CUT: COST[CUT]},
    "usage": usage_row(requests=2, input=1000 + 78, cache_read=200, output=340, cost=COST[ANSWERED] + COST[CUT],
                       failed=1),
    "dead": 0,
}


def test_the_previous_versions_stream_entries_are_settled(redis_url: str) -> None:
    """Version 0's entries ({"event": JSON}, as its writer made them from the spool's lines): charged, holds
    released, usage counted, exactly as before; a redelivery changes nothing."""
    async def scenario() -> tuple[dict[str, Any], int, int]:
        async with account(redis_url) as r:
            for line in SPOOL.splitlines():
                await r.xadd(store.METERING_STREAM, {"event": line})
            settler = await settle(r)
            for line in SPOOL.splitlines():  # delivered twice (a producer retry): applied once
                await r.xadd(store.METERING_STREAM, {"event": line})
            second = await settle(r)
            return await outcome(r), settler.applied, second.duplicates

    got, applied, duplicates = asyncio.run(scenario())
    assert (ANSWERED_AND_CUT, 2, 2) == (got, applied, duplicates)


@contextlib.asynccontextmanager
async def translator_started_on(redis_url: str, tmp_path: Path,
                                leave: Callable[[Path], None]) -> AsyncIterator[aioredis.Redis]:
    """A translator of this version started as worker 0, on whose spool folder ``leave`` put what a
    worker of the previous version left; yields once it serves (its start has read those files)."""
    cfg = gateway_config(0, tmp_path)
    listen = f"unix:{tmp_path / 'run' / 'translator-0.sock'}"
    cfg["translator"] = {"spool": {"dir": str(tmp_path / "spool")}}
    folder = worker_dir(tmp_path / "spool", listen)
    folder.mkdir(parents=True)
    leave(folder)
    (tmp_path / "run").mkdir()
    args = translator_main.parse_args(["--config", str(write_config(cfg, tmp_path / "gateway.yaml")),
                                       "--listen", listen, "--redis-url", redis_url, "--grace", "1"])
    socket = Path(listen.removeprefix("unix:"))
    async with account(redis_url) as r:
        stop = asyncio.Event()
        serving = asyncio.create_task(translator_main.serve(args, stop))
        try:
            await until(lambda: _done_or_listening(serving, socket))  # the files are read before it listens
            assert not serving.done(), serving.result()
            await until(lambda: _stream_has(r, 2))
            yield r
        finally:
            stop.set()
            assert 0 == await serving


async def until(cond: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not await cond():  # noqa: ASYNC110 - polled state, no event to wait on
            await asyncio.sleep(0.02)


async def _done_or_listening(task: asyncio.Task[int], socket: Path) -> bool:
    return task.done() or _exists(socket)


def _exists(path: Path) -> bool:
    return path.exists()


async def _stream_has(r: aioredis.Redis, n: int) -> bool:
    return int(await r.xlen(store.METERING_STREAM)) >= n


def test_a_spool_segment_of_the_previous_version_is_replayed_and_settled(redis_url: str, tmp_path: Path) -> None:
    """A worker of the previous version died with two events in its spool (Redis away): this version's worker
    adopts the segment at start, writes its events as they were written, and they settle exactly."""
    async def scenario() -> tuple[dict[str, Any], list[str]]:
        def leave(folder: Path) -> None:
            (folder / f"{1796604040026451371:020d}-6114.seg").write_bytes(SPOOL)

        async with translator_started_on(redis_url, tmp_path, leave) as r:
            fields = [f for _, f in await r.xrange(store.METERING_STREAM)]
            await settle(r)
            return await outcome(r), [k.decode() for f in fields for k in f]

    got, fields = asyncio.run(scenario())
    assert ["event", "event"] == fields  # as the previous version's writer would have put them
    assert ANSWERED_AND_CUT == got
    assert [] == list(worker_dir(tmp_path / "spool", f"unix:{tmp_path}/run/translator-0.sock").glob("*.seg"))


def test_an_inflight_file_of_the_previous_version_is_recorded_and_settled(redis_url: str, tmp_path: Path) -> None:
    """A worker of the previous version was killed serving a request (and with two events still spooled):
    this version's worker records that request from the in-flight file — cut short, status 0, its estimated
    prompt as billing.reaped_holds: charge_prompt priced it then — once, and the others once."""
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        def leave(folder: Path) -> None:
            (folder / f"{1796604040026451371:020d}-6114.seg").write_bytes(SPOOL)
            (folder / "inflight").write_bytes(INFLIGHT)

        async with translator_started_on(redis_url, tmp_path, leave) as r:
            await until(lambda: _stream_has(r, 3))
            events = [event.as_json(event.from_entry(f)) for _, f in await r.xrange(store.METERING_STREAM)]
            await settle(r)
            return await outcome(r), events

    got, events = asyncio.run(scenario())
    assert sorted(HOLDS) == sorted(e["event_id"] for e in events)  # each once
    [recovered] = [e for e in events if e["event_id"] == UNFINISHED]
    assert (0, True, False, {"input": 74}, True, COST[UNFINISHED], HOLDS[UNFINISHED]) == (
        recovered["status"], recovered["cut_short"], recovered["complete"], recovered["usage"],
        recovered["usage_estimated"], recovered["cost_nano"], recovered["hold_nano"])
    assert {"balance": CREDIT - sum(COST.values()), "held": 0, "charges": COST,
            "usage": usage_row(requests=3, input=1000 + 78 + 74, cache_read=200, output=340,
                               cost=sum(COST.values()), failed=2),
            "dead": 0} == got


# --- a newer event ------------------------------------------------------------------------------

FUTURE_FIELD = 99  # a field number this version does not know
NEWER = MeteringEvent(version=event.VERSION, event_id="newer-1", request_id="r-newer", account=ACCOUNT,
                      key_id="k", model="gpt-test", status=200, complete=True, cost_nano=1234,
                      ts=json.loads(SPOOL.splitlines()[0])["ts"])
NEWER.usage.input = 10


def _varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


# ... as a later version writes it: the same event and one more field (field 99, a string).
NEWER_DATA = NEWER.SerializeToString() + _varint(FUTURE_FIELD << 3 | 2) + _varint(6) + b"future"


def test_the_newer_event_really_carries_a_field_this_version_does_not_know() -> None:
    """The fixture of the tests below: known fields as NEWER's, the unknown one kept and written back."""
    parsed = event.parse(NEWER_DATA)
    assert event.as_json(NEWER) == event.as_json(parsed)
    assert NEWER_DATA != NEWER.SerializeToString() and NEWER_DATA == parsed.SerializeToString()


async def _through_the_stream(r: aioredis.Redis, tmp_path: Path) -> None:
    await r.xadd(store.METERING_STREAM, event.entry(NEWER_DATA))


async def _through_a_spool(r: aioredis.Redis, tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}-1.seg").write_bytes(event.line(NEWER_DATA))
    spool = Spool(tmp_path)
    spool.open()
    meter = Meter(r, spool=spool)
    meter.start()
    await until(lambda: _stream_has(r, 1))
    await meter.close()


async def _through_an_inflight_file(r: aioredis.Redis, tmp_path: Path) -> None:
    (tmp_path / "inflight").write_bytes(b"+" + event.line(NEWER_DATA))
    spool = Spool(tmp_path / "spool")
    spool.open()
    meter = Meter(r, spool=spool)
    meter.start()
    assert 1 == translator_main.record_unfinished(Inflight(tmp_path / "inflight"), spool, meter)
    await meter.close()


@pytest.mark.parametrize("place", [_through_the_stream, _through_a_spool, _through_an_inflight_file],
                         ids=["stream", "spool", "inflight"])
def test_a_newer_event_with_a_field_this_version_does_not_know_is_settled(
        redis_url: str, tmp_path: Path, place: Callable[[aioredis.Redis, Path], Any]) -> None:
    """Readers ignore the fields they do not know (and pass them on): the event settles as its known fields say."""
    async def scenario() -> tuple[dict[str, Any], bytes]:
        async with account(redis_url) as r:
            await place(r, tmp_path)
            [(_, fields)] = await r.xrange(store.METERING_STREAM)
            await settle(r)
            return await outcome(r), fields[b"pb"]

    got, data = asyncio.run(scenario())
    assert NEWER_DATA == data  # nothing lost on the way, the unknown field included
    assert (CREDIT - 1234, {"newer-1": 1234}, 0) == (got["balance"], got["charges"], got["dead"])
    assert (1, 10, 1234) == (got["usage"]["requests"], got["usage"]["input"], got["usage"]["cost"])


def test_an_event_of_a_version_this_settler_does_not_read_is_kept_in_the_dead_letters(redis_url: str) -> None:
    """A field that changed meaning comes with a new version: an older settler must not apply it."""
    async def scenario() -> tuple[dict[str, Any], list[str]]:
        async with account(redis_url) as r:
            later = MeteringEvent()
            later.CopyFrom(NEWER)
            later.version = max(event.READS) + 1
            await r.xadd(store.METERING_STREAM, event.entry(later.SerializeToString()))
            await settle(r)
            dead = [f[b"error"].decode() for _, f in await r.xrange(DEAD_LETTERS)]
            b = Billing(r)
            return {"balance": (await b.balance(ACCOUNT))[0]}, dead

    got, dead = asyncio.run(scenario())
    assert {"balance": CREDIT} == got
    assert [f"version {max(event.READS) + 1} is newer than this settler reads (0, 1): upgrade the settler"] == dead


def test_events_an_older_settler_refused_are_applied_when_this_one_starts(redis_url: str) -> None:
    """Translators upgraded before the settlers: the old settler dead-letters what it cannot read (here, as
    the previous version did, for want of an "event" field). The first settler that reads them applies them
    at start and deletes those dead letters; what nobody can read stays."""
    async def scenario() -> tuple[dict[str, Any], list[bytes]]:
        async with account(redis_url) as r:
            await r.xadd(DEAD_LETTERS, {"entry": "1-0", "error": "'event'", "pb": NEWER_DATA})
            await r.xadd(DEAD_LETTERS, {"entry": "2-0", "error": "unexpected character", "event": b"{not json"})
            settler, stop = Settler(r, consumer="upgrade-test", block_ms=50), asyncio.Event()
            running = asyncio.create_task(settler.run(stop))
            await until(lambda: _dead_letters(r, 1))
            stop.set()
            await running
            return await outcome(r), [f[b"entry"] for _, f in await r.xrange(DEAD_LETTERS)]

    got, left = asyncio.run(scenario())
    assert (CREDIT - 1234, {"newer-1": 1234}, [b"2-0"]) == (got["balance"], got["charges"], left)


async def _dead_letters(r: aioredis.Redis, n: int) -> bool:
    return int(await r.xlen(DEAD_LETTERS)) == n
