"""Azure OpenAI in front of the OpenAI fakes: what Azure checks, and what it adds to answers.

    POST /openai/deployments/{deployment}/chat/completions?api-version=V   Chat Completions
    POST /openai/deployments/{deployment}/embeddings?api-version=V         embeddings
    POST /openai/v1/chat/completions | /openai/v1/responses | /openai/v1/embeddings   (model in the body)

Checked as Azure checks them: the ``api-key`` header (401 with Azure's body when missing or wrong;
``AZURE_KEY`` unless the fake was given another), ``api-version`` on a deployment path (404 without
it, 400 for one Azure does not know). Answers are the OpenAI fake's plus Azure's
``prompt_filter_results`` (a first stream chunk with no choices and an empty id, as Azure sends it)
and ``content_filter_results``. ``prompt_filtered()`` and ``answer_filtered()`` script its filters.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from fakes import embeddings
from fakes.codec import Answer, Call, Kind, Route
from fakes.http import Response
from fakes.openai import OpenAICodec
from fakes.recording import RecordedRequest
from fakes.responses import ResponsesCodec
from fakes.script import Reply

AZURE_KEY = "azure-test-key"
# GA and preview data-plane inference versions (learn.microsoft.com, Azure OpenAI API version lifecycle)
API_VERSIONS = frozenset({
    "2024-02-01", "2024-06-01", "2024-10-21",
    "2024-08-01-preview", "2024-10-01-preview", "2024-12-01-preview", "2025-01-01-preview",
    "2025-03-01-preview", "2025-04-01-preview",
})
_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/(chat/completions|embeddings)")
_JSON = [(b"content-type", b"application/json")]
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def _results(filtered: str | None = None) -> dict[str, Any]:
    return {c: {"filtered": c == filtered, "severity": "high" if c == filtered else "safe"} for c in _CATEGORIES}


_PROMPT_RESULTS = [{"prompt_index": 0, "content_filter_results": _results()}]


class AzureChatCodec(OpenAICodec):
    """The OpenAI fake's Chat Completions with Azure's content-filter annotations."""

    def complete(self, call: Call, answer: Answer) -> bytes:
        body = orjson.loads(super().complete(call, answer))
        body["prompt_filter_results"] = _PROMPT_RESULTS
        for choice in body["choices"]:
            filtered = "violence" if choice["finish_reason"] == "content_filter" else None
            choice["content_filter_results"] = _results(filtered)
        return orjson.dumps(body)

    def stream(self, call: Call, answer: Answer) -> list[bytes]:
        first = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                 "prompt_filter_results": _PROMPT_RESULTS}
        return [b"data: " + orjson.dumps(first) + b"\n\n", *super().stream(call, answer)]


CHAT = AzureChatCodec()
RESPONSES = ResponsesCodec()
_V1: dict[str, Route] = {
    "/openai/v1/chat/completions": Route(CHAT, Kind.GENERATE),
    "/openai/v1/responses": Route(RESPONSES, Kind.GENERATE),
    "/openai/v1/embeddings": Route(embeddings.OPENAI, Kind.GENERATE),
}


def route(request: RecordedRequest, key: str) -> Route | Response:
    """The route for an ``/openai/…`` request, or the error Azure would answer with."""
    if request.headers.get("api-key") != key:
        return _error(401, {"code": "401", "message": "Access denied due to invalid subscription key or wrong API "
                            "endpoint. Make sure to provide a valid key for an active subscription and use a "
                            "correct regional API endpoint for your resource."})
    found = _V1.get(request.path) if request.method == "POST" else None
    if found is not None:
        return found
    match = _DEPLOYMENT.fullmatch(request.path) if request.method == "POST" else None
    if match is None:
        return _error(404, {"code": "404", "message": "Resource not found"})
    version = request.query.get("api-version")
    if version is None:
        return _error(404, {"code": "404", "message": "Resource not found"})
    if version not in API_VERSIONS:
        return _error(400, {"code": "BadRequest", "message": "API version not supported"})
    if match[2] == "embeddings":
        return Route(embeddings.OPENAI, Kind.GENERATE, model=match[1])
    return Route(CHAT, Kind.GENERATE, model=match[1])


def prompt_filtered(category: str = "violence", **match: Any) -> Reply:
    """A 400 ``content_filter`` as Azure answers a prompt its filter refuses (``match``: Reply's match fields)."""
    error = {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy. Please modify your prompt and retry.",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": _results(category)},
    }
    return Reply(status=400, body={"error": error}, **match)


def answer_filtered(text: str = "Here is how", **match: Any) -> Reply:
    """An answer Azure's filter cut off: what was sent, then ``finish_reason: content_filter``."""
    return Reply(text=text, finish_reason="content_filter", **match)


def _error(status: int, error: dict[str, Any]) -> Response:
    return Response(status, list(_JSON), [orjson.dumps({"error": error})])
