"""Nothing stops because one part died: the supervisor starts it again and the rest keeps serving.

A translator, the settler and Redis are killed with SIGKILL under a supervised ``Stack``
(what ``make run`` runs); ``tokengate translators`` (the container's entry point) and
``tokengate run`` are run as the commands they are. The numbers printed (run with ``-s``)
are the ones docs/operations.md quotes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import httpx
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.config import load
from fakes import FakeProvider, Reply, Usage
from tests.harness import GatewayUnderTest, gateway_config, own_stack, stream_in_background, write_config
from tokengate.devstack import grpc_serving
from tokengate.procs import Backoff, Child, free_port
from tokengate.render import translator_addresses

WORDS = 10  # a streamed answer: 10 chunks 20 ms apart
STREAMED = Reply(text=" ".join(["w"] * WORDS), usage=Usage(input=100, output=50), delay_between=0.02, times=None)
EXPECTED = " ".join(["w"] * WORDS)
MESSAGES: Any = [{"role": "user", "content": "x"}]
LEASE_TTL_S = 5  # a lease that could not be given back while Redis was down is released this soon


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``cond`` until it holds; the seconds it took."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, f"no {what} after {timeout:g}s"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """A stack of its own, supervised as `make run` supervises it, two translator workers."""
    def tweak(cfg: dict[str, Any]) -> None:
        cfg["billing"]["lease"]["ttl_s"] = LEASE_TTL_S

    with own_stack(tmp_path_factory.mktemp("supervised"), tweak, supervised=True) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _back_off_as_configured(supervised: GatewayUnderTest) -> Iterator[None]:
    supervised.fake.reset()
    yield
    supervised.stack.supervisor.backoff = Backoff()


def child(gw: GatewayUnderTest, name: str) -> Child:
    return next(c for c in gw.stack.supervisor.children if c.name == name)


def kill(c: Child) -> Callable[[], bool]:
    """SIGKILL ``c`` and wait for its end; a test for "it runs again" (a new process under the same name)."""
    pid = c.proc.pid
    c.proc.kill()
    c.proc.wait()
    return lambda: c.proc.pid != pid and c.alive()


@dataclass
class Outcome:
    start: float
    end: float
    result: str  # "ok", an HTTP status, or the exception the SDK raised


@dataclass
class Load:
    """``clients`` threads sending streamed chat completions with the openai SDK until the block ends."""

    gw: GatewayUnderTest
    key: str
    clients: int = 4
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._run) for _ in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self) -> None:
        with openai.OpenAI(base_url=f"{self.gw.http}/v1", api_key=self.key, max_retries=0, timeout=30) as oai:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    stream = oai.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
                    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    result = "ok" if text == EXPECTED else f"cut short: {text!r}"
                except openai.APIStatusError as exc:
                    result = str(exc.status_code)
                except Exception as exc:  # noqa: BLE001 - a broken stream surfaces as the transport's error
                    result = type(exc).__name__
                self.outcomes.append(Outcome(start, time.monotonic(), result))

    def ok_since(self, t: float) -> int:
        return sum(o.result == "ok" and o.start >= t for o in list(self.outcomes))


def envoy_host(gw: GatewayUnderTest, address: str) -> dict[str, str]:
    """Envoy's view of one translator endpoint (/clusters): health_flags, rq_total, …"""
    prefix = f"translator::{address.removeprefix('unix:')}::"
    text = httpx.get(f"{gw.admin}/clusters", timeout=5).text
    return dict(line.removeprefix(prefix).split("::", 1) for line in text.splitlines() if line.startswith(prefix))


def restarts_reported(metrics_url: str, process: str) -> float | None:
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.HTTPError:
        return None
    m = re.search(rf'^tokengate_restarts_total{{process="{process}"}} (\S+)$', text, re.M)
    return float(m[1]) if m else None


def test_a_killed_translator_is_restarted_while_the_other_serves(supervised: GatewayUnderTest) -> None:
    """SIGKILL of translator-0 under streaming load: requests started after its death all succeed on the
    other worker, the supervisor starts it again on its socket, Envoy sends it streams again, and
    /metrics (served by worker 0, so back with it) counts the restart."""
    gw = supervised
    gw.fake.push(STREAMED)
    key = gw.new_key("load", fund_usd=100)
    funded, _ = gw.balance("load")
    start_id = gw.last_stream_id()
    victim = child(gw, "translator-0")
    address = translator_addresses(gw.stack.cfg, 2)[0]
    with Load(gw, key) as load:
        wait_for(lambda: load.ok_since(0) >= 20, 30, "steady load")
        again = kill(victim)
        dead = time.monotonic()
        wait_for(again, 10, "restart")
        restarted = time.monotonic() - dead
        wait_for(lambda: envoy_host(gw, address).get("health_flags") == "healthy", 20, "healthy worker")
        back = time.monotonic() - dead
        served = int(envoy_host(gw, address)["rq_total"])
        wait_for(lambda: int(envoy_host(gw, address)["rq_total"]) >= served + 10, 20, "streams to the new worker")
        now = time.monotonic()
        wait_for(lambda: load.ok_since(now) >= 10, 20, "load after the restart")
    after = [o for o in load.outcomes if o.start >= dead]
    meanwhile = [o for o in after if o.start < dead + back]
    in_flight = [o for o in load.outcomes if o.start < dead < o.end]
    failed_after = [o.result for o in after if o.result != "ok"]
    failed_in_flight = [o.result for o in in_flight if o.result != "ok"]
    print(f"\ntranslator-0 killed: restarted after {restarted:.2f}s, healthy in Envoy after {back:.2f}s; "
          f"{len(meanwhile)} requests started in that window, {len(after)} after the kill in all, "
          f"{len(failed_after)} of them failed; {len(failed_in_flight)} of {len(in_flight)} in flight failed: "
          f"{failed_in_flight}")
    assert [] == failed_after, "a request started after the death went to the dead worker"
    assert len(failed_in_flight) <= load.clients
    assert len(meanwhile) > 0, "the other worker served while translator-0 was out"
    wait_for(lambda: restarts_reported(gw.metrics, "translator-0") == 1.0, 20, "tokengate_restarts_total")
    # Money: every upstream call has exactly one event (the ones cut by the kill recovered from the
    # in-flight file), every answered request is charged once, and balance = credits − charges.
    upstream_calls = len(gw.fake.requests)
    events = gw.wait_metering(start_id, upstream_calls, timeout=20)
    assert upstream_calls == len(events) == len({e["event_id"] for e in events})
    assert sum(o.result == "ok" for o in load.outcomes) == sum(e["complete"] for e in events)
    expected = funded - sum(e["cost_nano"] for e in events)
    assert (expected, 0) == gw.wait_balance("load", expected, timeout=LEASE_TTL_S + 20)
    charges = [e for e in gw._billing(lambda b: b.ledger("load", 10_000)) if e["type"] == "charge"]
    assert sum(e["cost_nano"] > 0 for e in events) == len(charges)


def test_a_killed_settler_is_restarted_and_settles_what_was_written_meanwhile(supervised: GatewayUnderTest) -> None:
    """Events written while the settler is dead are settled by its restart: balance = credits − charges exactly,
    one charge per request."""
    gw = supervised
    key = gw.new_key("settle", fund_usd=10)
    start, _ = gw.balance("settle")
    settler = child(gw, "settler")
    gw.stack.supervisor.backoff = Backoff(first_s=3.0)  # dead long enough for the requests below
    again = kill(settler)
    since = gw.last_stream_id()
    with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=key, max_retries=0) as oai:
        for _ in range(6):
            gw.fake.push(Reply(text="x", usage=Usage(input=100, output=50)))
            oai.chat.completions.create(model="gpt-test", messages=MESSAGES)
    events = gw.wait_metering(since, 6)
    assert (6, False) == (len(events), again()), "the events were written while the settler was dead"
    assert start == gw.balance("settle")[0], "nothing settles while it is dead"
    wait_for(again, 10, "restart")
    expected = start - sum(e["cost_nano"] for e in events)
    assert (expected, 0) == gw.wait_balance("settle", expected, timeout=15)
    charges = [e for e in gw._billing(lambda b: b.ledger("settle", 100)) if e["type"] == "charge"]
    assert 6 == len(charges)


def test_a_killed_redis_means_503_in_the_callers_shape_until_it_is_back(supervised: GatewayUnderTest) -> None:
    """Redis SIGKILLed: callers get 503 in OpenAI's error shape (nothing else stops); the supervisor starts
    it again from its AOF, service resumes on its own, and every served request is charged once. (A lease
    the translator could not give back during the outage stays held until the reaper releases it at its TTL.)"""
    gw = supervised
    key = gw.new_key("redis", fund_usd=10)
    start, _ = gw.balance("redis")
    since = gw.last_stream_id()
    others = {c.name: c.proc.pid for c in gw.stack.supervisor.children if c.name != "redis"}
    redis = child(gw, "redis")
    gw.stack.supervisor.backoff = Backoff(first_s=3.0)  # an outage long enough to be seen
    served = 0
    refused: list[openai.APIStatusError] = []
    with openai.OpenAI(base_url=f"{gw.http}/v1", api_key=key, max_retries=0, timeout=30) as oai:

        def ask() -> bool:
            nonlocal served
            try:
                oai.chat.completions.create(model="gpt-test", messages=MESSAGES)
            except openai.APIStatusError as exc:
                refused.append(exc)
                return False
            served += 1
            return True

        assert ask()
        again = kill(redis)
        dead = time.monotonic()
        wait_for(lambda: not ask() and not again(), 10, "a refusal while Redis is down")
        wait_for(again, 10, "restart")
        resumed = wait_for(ask, 30, "service after the restart") + (time.monotonic() - dead)
    print(f"\nredis killed: {len(refused)} requests refused, service back {resumed:.2f}s after the kill "
          f"(restart after {gw.stack.supervisor.backoff.first_s:g}s back-off)")
    assert {503} == {e.status_code for e in refused}
    body: Any = refused[0].body
    assert "server_error" == body["type"], body
    assert others == {c.name: c.proc.pid for c in gw.stack.supervisor.children if c.name != "redis"}
    events = [e for e in gw.wait_metering(since, served, timeout=15) if e["account"] == "redis"]
    assert served == len(events) == len({e["request_id"] for e in events})
    expected = start - sum(e["cost_nano"] for e in events)
    assert (expected, 0) == gw.wait_balance("redis", expected, timeout=LEASE_TTL_S + 15)
    charges = [e for e in gw._billing(lambda b: b.ledger("redis", 100)) if e["type"] == "charge"]
    assert served == len(charges)


def _pid_of(needle: str) -> int | None:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle.encode() in (d / "cmdline").read_bytes():
                    return int(d.name)
            except OSError:
                continue
    return None


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def test_tokengate_translators_keeps_the_other_workers_serving(supervised: GatewayUnderTest, tmp_path: Path) -> None:
    """The container entry point: worker 0 SIGKILLed; worker 1 keeps its process and its open stream, and
    answers throughout; worker 0 comes back on its socket; SIGTERM then stops all, exit 0."""
    cfg = gateway_config(supervised.fake.port, tmp_path)
    path = write_config(cfg, tmp_path / "gateway.yaml")
    a0, a1 = translator_addresses(load(path), 2)
    output = tmp_path / "translators.log"
    with output.open("wb") as out_file:  # a file, not a pipe: nobody reads it until the end
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokengate.cli", "translators", "-c", str(path), "--workers", "2", "--grace", "2",
             "--redis-url", supervised.stack.effective_redis_url, "--metrics-dir", str(tmp_path / "metrics")],
            stdout=out_file, stderr=subprocess.STDOUT, cwd=tmp_path)
    channel = grpc.insecure_channel(a1)
    try:
        wait_for(lambda: grpc_serving(a0) and grpc_serving(a1), 30, "both workers serving")
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert health_pb2.HealthCheckResponse.SERVING == next(watch).status  # an open stream on worker 1
        pid0, pid1 = _pid_of(f"--listen\0{a0}"), _pid_of(f"--listen\0{a1}")
        assert pid0 and pid1
        os.kill(pid0, signal.SIGKILL)
        answers = 0

        def back() -> bool:
            nonlocal answers
            assert proc.poll() is None, "tokengate translators exited"
            assert grpc_serving(a1), "worker 1 stopped answering"
            answers += 1
            new = _pid_of(f"--listen\0{a0}")
            return new not in (None, pid0) and grpc_serving(a0)

        took = wait_for(back, 30, "worker 0 back")
        print(f"\ntokengate translators: worker 0 back after {took:.2f}s; worker 1 answered {answers} checks meanwhile")
        assert pid1 == _pid_of(f"--listen\0{a1}")
        assert watch.is_active(), "worker 1's open stream was cut"
        metrics = f"http://{cfg['translator']['metrics_listen']}/metrics"
        wait_for(lambda: restarts_reported(metrics, "translator-0") == 1.0, 20, "tokengate_restarts_total")
        watch.cancel()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        channel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = output.read_text()
    assert 0 == proc.returncode, out
    exited = [ln for ln in out.splitlines() if '"process_exited"' in ln]
    assert 1 == len(exited) and '"exit_code": -9' in exited[0] and '"translator-0"' in exited[0], out
    assert 1 == sum('"process_restarted"' in ln for ln in out.splitlines()), out
    assert [] == _processes_mentioning(str(tmp_path))


def test_tokengate_run_restarts_envoy_and_still_stops_everything(tmp_path: Path) -> None:
    """`tokengate run` (make run): Envoy SIGKILLed is started again and serves the same key; Ctrl-C then
    stops everything, restarted children included."""
    with FakeProvider.running() as fake:
        cfg = gateway_config(fake.port, tmp_path)
        path = write_config(cfg, tmp_path / "gateway.yaml")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokengate.cli", "run", "-c", str(path), "--workdir", str(tmp_path),
             "--workers", "1", "--redis-port", str(free_port()), "--admin-port", str(free_port()),
             "--portal-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "REDIS_URL": ""},
            cwd=tmp_path)
        assert proc.stdout is not None
        try:
            banner = ""
            deadline = time.monotonic() + 60
            while "Ctrl-C stops everything" not in banner and time.monotonic() < deadline:
                banner += proc.stdout.readline()
            key = re.search(r"sk-tg-\S+", banner)[0]  # type: ignore[index]
            url = f"http://127.0.0.1:{cfg['server']['http_port']}/v1/chat/completions"

            def answered() -> bool:
                try:
                    r = httpx.post(url, headers={"authorization": f"Bearer {key}"}, timeout=5,
                                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "up?"}]})
                except httpx.HTTPError:
                    return False
                return r.status_code == 200

            assert answered()
            envoy = _pid_of(str(tmp_path / "envoy.yaml"))
            assert envoy
            os.kill(envoy, signal.SIGKILL)
            took = wait_for(lambda: _pid_of(str(tmp_path / "envoy.yaml")) not in (None, envoy) and answered(),
                            30, "Envoy back")
            print(f"\ntokengate run: Envoy killed, serving again after {took:.2f}s")
            assert proc.poll() is None
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert 0 == proc.returncode, banner + out
    assert re.search(r"process_exited .*process=envoy", out), out
    assert re.search(r"process_restarted .*process=envoy", out), out
    assert "nothing is left running" in out
    assert [] == _processes_mentioning(str(tmp_path))


def test_a_request_in_flight_on_a_killed_translator_is_metered_by_its_restart(supervised: GatewayUnderTest) -> None:
    """Both translators SIGKILLed mid-stream: the client sees the stream broken, and the restarted worker
    records the request from its in-flight file: one event, cut short, status 0, charged as
    billing.reaped_holds says (release: nothing) and counted in usage as a failed request."""
    import datetime as dt

    gw = supervised
    key = gw.new_key("inflight", fund_usd=10)
    start, _ = gw.balance("inflight")
    gw.fake.push(Reply(text=" ".join(["w"] * 40), delay_between=0.2, times=None))
    since = gw.last_stream_id()
    t, got_first, outcome = stream_in_background(gw, key)
    assert got_first.wait(10)
    again = [kill(child(gw, f"translator-{i}")) for i in range(2)]
    t.join(30)
    assert ["RemoteProtocolError"] == outcome
    for a in again:
        wait_for(a, 10, "restart")
    [event] = gw.wait_metering(since, 1, timeout=20)
    assert (0, True, False, 0, {}) == (event["status"], event["cut_short"], event["complete"],
                                       event["cost_nano"], event["usage"])
    today = dt.datetime.now(dt.UTC).date()
    wait_for(lambda: bool(gw._billing(lambda b: b.usage("inflight", today, today))), 10, "settled")
    [row] = gw._billing(lambda b: b.usage("inflight", today, today))
    assert (1, 1, 0) == (row["requests"], row["failed"], row["cost"])
    assert (start, 0) == gw.wait_balance("inflight", start, timeout=LEASE_TTL_S + 15)


def test_with_no_translator_answering_callers_get_503_in_their_shape(supervised: GatewayUnderTest) -> None:
    """Both translators dead (restarts held back 3 s): Envoy cannot open the side stream and answers
    503 in the path's protocol shape (was an empty 500), then serves again once they are back."""
    gw = supervised
    key = gw.new_key("nobody", fund_usd=1)
    gw.stack.supervisor.backoff = Backoff(first_s=3.0)
    again = [kill(child(gw, f"translator-{i}")) for i in range(2)]
    oai = httpx.post(f"{gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                     json={"model": "gpt-test", "messages": MESSAGES}, timeout=10)
    ant = httpx.post(f"{gw.http}/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                     json={"model": "gpt-test", "max_tokens": 5, "messages": MESSAGES}, timeout=10)
    assert not any(a() for a in again), "answered while both were still dead"
    assert (503, "server_error") == (oai.status_code, oai.json()["error"]["type"]), oai.text
    assert (503, "error") == (ant.status_code, ant.json()["type"]), ant.text
    for a in again:
        wait_for(a, 15, "restart")
    gw.fake.push(Reply(text="back", usage=Usage(input=1, output=1)))
    wait_for(lambda: httpx.post(f"{gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                                json={"model": "gpt-test", "messages": MESSAGES}, timeout=10).status_code == 200,
             20, "service again")
