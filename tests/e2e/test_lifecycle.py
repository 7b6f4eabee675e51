"""Starting and stopping: nothing left running, fixed shutdown order, fail closed without Redis."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from fakes import FakeProvider
from tests.harness import GatewayUnderTest, gateway_config, write_config
from tests.inprocess import harness as h
from tokengate.devstack import Stack, grpc_serving
from tokengate.procs import free_port


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmd and int(d.name) != os.getpid():
                pids.append(int(d.name))
    return pids


def test_tokengate_run_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    """`tokengate run` serves, and SIGINT stops Redis, translators and Envoy; none is left."""
    with FakeProvider.running() as fake:
        cfg = gateway_config(fake.port, tmp_path)
        path = write_config(cfg, tmp_path / "gateway.yaml")
        env = {**os.environ, "REDIS_URL": ""}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokengate.cli", "run", "-c", str(path), "--workdir", str(tmp_path),
             "--workers", "1", "--redis-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
        try:
            _serve_then_interrupt(proc, cfg, tmp_path)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _serve_then_interrupt(proc: subprocess.Popen[str], cfg: dict[str, Any], tmp_path: Path) -> None:
    """Wait for the banner, make a call with the printed key, press Ctrl-C, check nothing is left."""
    assert proc.stdout is not None
    banner = ""
    deadline = time.monotonic() + 60
    while "Ctrl-C stops everything" not in banner and time.monotonic() < deadline:
        banner += proc.stdout.readline()
    key = re.search(r"sk-tg-\S+", banner)[0]  # type: ignore[index]
    r = httpx.post(f"http://127.0.0.1:{cfg['server']['http_port']}/v1/chat/completions",
                   headers={"authorization": f"Bearer {key}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "up?"}]})
    assert "echo: up?" == r.json()["choices"][0]["message"]["content"]
    assert len(_processes_mentioning(str(tmp_path))) >= 3  # redis, translator, envoy
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert 0 == proc.returncode, banner + out
    assert "nothing is left running" in out
    assert [] == _processes_mentioning(str(tmp_path))


def _serving_translator(gateway: GatewayUnderTest, sock: str) -> subprocess.Popen[str]:
    """A translator of ``gateway``'s config on ``sock`` (its own process, output captured), once it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "translator", "--config", str(gateway.stack.config_path), "--listen", sock,
         "--redis-url", gateway.stack.effective_redis_url, "--grace", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while not grpc_serving(sock):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_translator_shuts_down_in_order(gateway: GatewayUnderTest, tmp_path: Path) -> None:
    """SIGTERM: health goes NOT_SERVING, the server stops, metering is flushed, Redis closed; exit 0."""
    sock = f"unix:{tmp_path}/t.sock"
    proc = _serving_translator(gateway, sock)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert 0 == proc.returncode, out
    events = [ln.split('"event": "')[1].split('"')[0] for ln in out.splitlines() if '"event": "' in ln]
    assert ["translator_started", "translator_stopping", "translator_stopped"] == events
    assert not grpc_serving(sock)


def test_a_request_answered_just_before_sigterm_is_metered_and_its_lease_given_back(gateway: GatewayUnderTest,
                                                                                     tmp_path: Path) -> None:
    """A request's lease is told what it cost a moment after its answer (Gateway.later); a SIGTERM in that moment
    still records its event and gives the whole lease back: nothing stays held."""
    sock = f"unix:{tmp_path}/t.sock"
    proc = _serving_translator(gateway, sock)
    key, since = gateway.new_key("sigterm"), gateway.last_stream_id()
    headers = h.request_headers(h.CHAT, h.bearer(key))
    answer = {"id": "c", "object": "chat.completion", "model": "gpt-test", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    sent = [headers, h.request_body({"model": "gpt-test", "messages": [{"role": "user", "content": "Hi"}]}),
            h.response_body(answer, status=200, deployment="oai"), h.response_body(b"", end=True)]

    async def one() -> None:
        async with grpc.aio.insecure_channel(sock) as channel:
            call = pb_grpc.ExternalProcessorStub(channel).Process(metadata=(("x-tokengate-filter", "router"),))
            for msg in sent:
                await call.write(msg)
                assert (await call.read()).WhichOneof("response") in ("request_headers", "request_body",
                                                                      "response_body")
            await call.done_writing()

    asyncio.run(one())
    proc.send_signal(signal.SIGTERM)  # at once: within the moment the request's end waits
    out, _ = proc.communicate(timeout=30)
    assert 0 == proc.returncode, out
    request_id = next(v.raw_value.decode() for v in headers.request_headers.headers.headers if v.key == "x-request-id")
    [ev] = [e for e in gateway.metering_events(since) if e["request_id"] == request_id]
    assert (ev["status"], ev["usage"], ev["complete"]) == (200, {"input": 5, "output": 2}, True)
    funded = 100 * 1_000_000_000
    assert (funded - ev["cost_nano"], 0) == gateway.wait_balance("sigterm", funded - ev["cost_nano"], timeout=10)


def test_redis_down_fails_closed_with_503(tmp_path: Path) -> None:
    """With Redis gone, requests get 503 in the caller's shape and nothing reaches the provider."""
    with FakeProvider.running() as fake:
        cfg = gateway_config(fake.port, tmp_path)
        stack = Stack(write_config(cfg, tmp_path / "gateway.yaml"), workdir=tmp_path, workers=1,
                      redis_port=free_port(), log_level="warning")
        stack.start()
        try:
            gw = GatewayUnderTest(stack, fake, "", cfg)
            key = gw.new_key("down")
            redis = next(c for c in stack.supervisor.children if c.name == "redis")
            redis.proc.kill()
            redis.proc.wait(10)
            r = httpx.post(f"{gw.http}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                           json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
            assert 503 == r.status_code
            assert "server_error" == r.json()["error"]["type"]
            assert [] == fake.requests
        finally:
            stack.stop()
