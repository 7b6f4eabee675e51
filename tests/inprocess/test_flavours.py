"""A provider flavour that changes and signs the body (``translator/flavours``), on both routes: the
router's direct route sets the signature with the body it sends, and the upstream filter reads the
body on every attempt (even one that changes nothing for the protocol) and signs it in its body reply.
And one whose token is refreshed: every request of a direct route carries the token of its moment."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

from tests.inprocess.harness import (
    CHAT,
    InProcess,
    attempt_headers,
    bearer,
    new_body,
    request_body,
    request_headers,
    run,
    set_headers,
)
from tests.inprocess.test_upstream import attempt
from translator.endpoints import Kind
from translator.extproc.router import RouterProcessor
from translator.extproc.upstream import UpstreamAttempt
from translator.flavours import Flavour
from translator.protocols.base import Codec

BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


class Signing(Flavour):
    """A toy cloud: its prefix on the path, a field added to the body, a digest of path and body."""

    needs_body = True

    def upstream_path(self, codec: Codec, base_path: str, kind: Kind, model: str, *, stream: bool,
                      sse: bool) -> str:
        return "/cloud" + codec.upstream_path(base_path, kind, model, stream=stream, sse=sse)

    def credential(self, codec: Codec, key: str | None) -> dict[str, str]:
        return {"x-cloud-key": key or ""}

    def body(self, codec: Codec, body: dict[str, Any], kind: Kind, stream: bool) -> dict[str, Any]:
        return {**body, "cloud_version": "1"}

    def sign(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        assert headers["x-cloud-key"]  # the attempt's own headers are there to sign
        return {"x-signature": hashlib.sha256(path.encode() + b"\n" + body).hexdigest()}


def signature(path: str, body: bytes) -> str:
    return hashlib.sha256(path.encode() + b"\n" + body).hexdigest()


class Refreshing(Flavour):
    """A token that changes from one request to the next (as Vertex AI's and Entra ID's are refreshed)."""

    def __init__(self) -> None:
        self.issued = 0

    def credential(self, codec: Codec, key: str | None) -> dict[str, str]:
        self.issued += 1
        return {"authorization": f"Bearer token-{self.issued}"}


def flavoured(tg: InProcess, deployment: str, flavour: Flavour | None = None) -> None:
    t = dataclasses.replace(tg.gw.targets[deployment], flavour=flavour or Signing())
    tg.gw.targets[deployment] = t
    for model, direct in list(tg.gw.direct.items()):
        if direct.name == deployment:
            tg.gw.direct[model] = t


def test_the_direct_route_sends_the_flavoured_body_and_signs_it(redis_url: str) -> None:
    async def scenario(tg: InProcess) -> None:
        flavoured(tg, "oai")
        key = await tg.key("acme")
        proc = RouterProcessor(tg.gw)
        await proc.on_request_headers(request_headers(CHAT, bearer(key)))
        routed = await proc.on_request_body(request_body(BODY))
        sent = new_body(routed)
        assert sent is not None and orjson.loads(sent) == {**BODY, "cloud_version": "1"}
        headers = set_headers(routed)
        assert headers[":path"] == "/cloud/v1/chat/completions"
        assert headers["x-signature"] == signature("/cloud/v1/chat/completions", sent)
        assert headers["content-length"] == str(len(sent))

    run(redis_url, scenario)


def test_an_attempt_reads_and_signs_a_body_it_would_otherwise_skip(redis_url: str) -> None:
    """Same protocol, same model name: a plain provider skips the body (tests/inprocess/test_upstream.py);
    a signing one reads it, and its body reply carries the signature over the path the headers set."""
    async def scenario(tg: InProcess) -> None:
        flavoured(tg, "oai")
        up = UpstreamAttempt(tg.gw)
        reply = up.on_request_headers(attempt_headers("oai", "openai", attempt(CHAT, "openai|chat|e|gpt-test")))
        assert not reply.HasField("mode_override")  # the filter's buffered body mode stands
        assert set_headers(reply)[":path"] == "/cloud/v1/chat/completions"
        body = up.on_request_body(request_body(BODY))
        sent = new_body(body)
        assert sent is not None and orjson.loads(sent) == {**BODY, "cloud_version": "1"}
        assert set_headers(body) == {"content-length": str(len(sent)),
                                     "x-signature": signature("/cloud/v1/chat/completions", sent)}

    run(redis_url, scenario)


def test_a_refreshed_token_reaches_every_request_of_a_direct_route(redis_url: str) -> None:
    """A direct route's headers are built once per request shape only where the flavour fixes them
    (``Flavour.fixed_headers``): not with a token that is refreshed, nor with a signature."""
    async def scenario(tg: InProcess) -> list[str]:
        flavoured(tg, "oai", Refreshing())
        key = await tg.key("acme")
        tokens = []
        for _ in range(3):
            proc = RouterProcessor(tg.gw)
            await proc.on_request_headers(request_headers(CHAT, bearer(key)))
            tokens.append(set_headers(await proc.on_request_body(request_body(BODY)))["authorization"])
        return tokens

    assert run(redis_url, scenario) == ["Bearer token-1", "Bearer token-2", "Bearer token-3"]
    assert Flavour().fixed_headers and not Refreshing().fixed_headers and not Signing().fixed_headers
