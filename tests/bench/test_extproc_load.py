"""bench.extproc_load drives a real server (translator or the no-op floor) over gRPC and reports its cost.

No timing is asserted: the numbers are for docs/performance.md. What is checked is that each server
routes every request it is sent (the tool fails on a refusal) and that the report adds up.
"""

from __future__ import annotations

import orjson
import pytest

from bench import extproc_load
from translator.extproc.messages import ATTR_NAMESPACE
from translator.upstream_http import DEPLOYMENT_ATTR


@pytest.mark.parametrize(("server", "flags"), [("translator", ()), ("translator", ("--stream",)), ("noop", ()),
                                               ("translator", ("--long", "--to-anthropic"))])
def test_each_server_routes_every_request_and_is_measured(server: str, flags: tuple[str, ...],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--server", server, "--requests", "20", "--concurrency", "2", *flags]
    assert extproc_load.main(argv) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert (report["server"], report["stream"], report["requests"]) == (server, "--stream" in flags, 20)
    assert (report["long"], report["to_anthropic"]) == ("--long" in flags, "--to-anthropic" in flags)
    assert report["cpu_us_per_request"] > 0 and report["rps"] > 0 and report["first_three_p50_us"] > 0


def test_the_messages_are_what_envoy_sends_for_a_c_request() -> None:
    """Headers with the key, the body (stream flag as asked), the answer with Envoy's attributes, its end."""
    headers, body, answer, end = extproc_load.messages("tg-k", stream=True)
    sent = {h.key: h.raw_value for h in headers.request_headers.headers.headers}
    assert sent[":path"] == b"/v1/chat/completions" and sent["authorization"] == b"Bearer tg-k"
    assert orjson.loads(body.request_body.body)["stream"] is True and body.request_body.end_of_stream
    assert answer.response_body.body.startswith(b"data: ") and not answer.response_body.end_of_stream
    assert answer.attributes[ATTR_NAMESPACE].fields["response.code"].number_value == 200
    assert end.response_body.end_of_stream and end.response_body.body.endswith(b"data: [DONE]\n\n")


def test_a_long_translated_request_is_scenario_l_d1s() -> None:
    """--long --to-anthropic: L's body naming the Anthropic model, answered by an Anthropic message from ant-fast."""
    _, body, answer, end = extproc_load.messages("tg-k", stream=False, long=True, anthropic=True)
    sent = orjson.loads(body.request_body.body)
    assert sent["model"] == "claude-bench" and len(body.request_body.body) > 200 * 1024
    assert orjson.loads(answer.response_body.body)["type"] == "message"
    assert answer.attributes[ATTR_NAMESPACE].fields[DEPLOYMENT_ATTR].string_value == "ant-fast"
    assert end.response_body.end_of_stream and not end.response_body.body
