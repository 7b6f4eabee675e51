"""Every golden transcript as a Responses client gets it (``<case>/openai-responses.sse``), judged by
the ``openai`` SDK's ``responses.stream`` accumulator, and the event framing it relies on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from core.protocols import Protocol
from core.usage import Usage
from translator.protocols.openai_responses import usage as responses_usage
from translator.sse import SSEDecoder

from . import sdk
from .test_stream_golden import CASES, case_meta, expected

RESP = Protocol.OPENAI_RESPONSES
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
# A Responses answer's status (and why it is incomplete) for each OpenAI finish reason of the cases.
STATUS = {"stop": ("completed", None), "tool_calls": ("completed", None),
          "length": ("incomplete", "max_output_tokens"), "content_filter": ("incomplete", "content_filter")}


def _events(body: bytes) -> list[dict[str, Any]]:
    """The SSE events, each checked to carry its type as its ``event:`` name and to be valid as the SDK's
    type of that event (strict validation: every field the SDK requires, of its type)."""
    out = []
    for ev in SSEDecoder().feed(body):
        doc = json.loads(ev.data)
        assert ev.event == doc["type"], ev.raw
        EVENTS.validate_python(doc)
        out.append(doc)
    return out


@pytest.mark.parametrize("case", CASES)
def test_framing_is_what_the_accumulator_relies_on(case: str) -> None:
    """created and in_progress first; sequence numbers 0, 1, 2 …; each output index added once, in order,
    before its events, and done once; one last lifecycle event (completed, incomplete or failed)."""
    events = _events(expected(case, RESP))
    assert list(range(len(events))) == [e["sequence_number"] for e in events]
    assert ["response.created", "response.in_progress"] == [e["type"] for e in events[:2]]
    assert events[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")
    ids = {events[0]["response"]["id"]} | {events[-1]["response"]["id"]}
    assert 1 == len(ids), "one response id throughout"
    added: dict[int, str] = {}
    done: set[int] = set()
    for e in events[2:-1]:
        index = e["output_index"]
        if e["type"] == "response.output_item.added":
            assert index == len(added) and index not in added, e
            added[index] = e["item"]["id"]
        else:
            assert index in added and index not in done, e
            if "item_id" in e:
                assert added[index] == e["item_id"], e
            if e["type"] == "response.output_item.done":
                assert added[index] == e["item"]["id"]
                done.add(index)
    if events[-1]["type"] != "response.failed":
        assert set(added) == done, "every item is done before the answer"
        assert [added[i] for i in sorted(added)] == [o["id"] for o in events[-1]["response"]["output"]]


@pytest.mark.parametrize("case", CASES)
def test_responses_sdk_accumulates_translated_stream(case: str) -> None:
    """openai-python's ResponseStream accumulates text, reasoning summaries, function calls, status and
    usage; an upstream error ends the stream with response.failed, which has no final response."""
    meta, body = case_meta(case), expected(case, RESP)
    client = sdk.openai_client(body)
    with client.responses.stream(model="m", input="hi") as stream:
        events = list(stream)
        if meta.get("error"):
            assert "response.failed" == events[-1].type
            error = events[-1].response.error
            assert error is not None and meta.get("error_message", "ended before") in error.message
            with pytest.raises(RuntimeError, match="response.completed"):
                stream.get_final_response()
            return
        if events[-1].type == "response.incomplete":
            final = events[-1].response
        else:
            final = stream.get_final_response()
    assert meta["text"] == final.output_text
    thinking = "\n\n".join(s.text for o in final.output if o.type == "reasoning" for s in o.summary)
    assert meta.get("thinking", "") == thinking
    if not meta.get("partial_tool"):  # arguments cut by the length limit are sent as they came
        assert [list(t) for t in meta["tools"]] == [[o.name, json.loads(o.arguments)]
                                                    for o in final.output if o.type == "function_call"]
    status, reason = STATUS[meta["finish"]["openai"]]
    assert (status, reason) == (final.status, final.incomplete_details.reason if final.incomplete_details else None)
    assert responses_usage.write(Usage(**meta["usage"])) == (final.usage.model_dump(exclude_none=True)
                                                            if final.usage else None)
