"""The bench's fast fake upstream (a real Envoy answering from direct responses) speaks like a provider."""

from __future__ import annotations

import http.client
from pathlib import Path

import orjson

from bench import upstream
from tokengate.procs import Supervisor, free_port


def test_it_answers_each_protocol_and_keeps_the_connection_open(tmp_path: Path) -> None:
    """A provider answers on a kept-alive connection. A direct response sent before the request's body was read
    made Envoy close each connection after its one answer, so every bench request paid a new TCP connection."""
    sup = Supervisor(tmp_path / "logs")
    port = free_port()
    try:
        upstream.start(sup, tmp_path, port, free_port(), concurrency=1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        asked = [("/v1/chat/completions", upstream.agent_request("gpt-bench"), upstream.OPENAI_RESPONSE),
                 ("/v1/messages", upstream.anthropic_request("claude-bench"), upstream.ANTHROPIC_RESPONSE),
                 ("/v1beta/models/gemini-bench:generateContent", upstream.gemini_request(), upstream.GEMINI_RESPONSE)]
        ports = set()
        for path, body, answer in asked:
            conn.request("POST", path, body, {"content-type": "application/json"})
            resp = conn.getresponse()
            assert (resp.status, orjson.loads(resp.read())) == (200, answer)
            assert resp.getheader("connection") is None and not resp.will_close
            ports.add(conn.sock.getsockname()[1])
        assert len(ports) == 1  # one connection for all three
        conn.close()
    finally:
        sup.stop_all()
