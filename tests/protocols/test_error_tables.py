"""Each protocol's error table (``translator/protocols/<name>/errors.py``), one test per row and direction.

Reading: an upstream's in-band error with the row's name decodes to the kind and status of the
first row with that name. Writing: an upstream error of the row's kind reaches that protocol's
client with the row's name, status (when the protocol has its own) and code.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from translator import ir
from translator.errors import Spelling, UpstreamError, kind_for_status
from translator.eventstream import encode_frame
from translator.protocols import REGISTRY
from translator.protocols.base import Codec

# The status a kind has when a table gives none (HTTP's).
USUAL = {"invalid_request": 400, "authentication": 401, "permission": 403, "not_found": 404,
         "request_too_large": 413, "rate_limit": 429, "insufficient_quota": 429, "api_error": 500,
         "overloaded": 503, "unavailable": 503, "timeout": 504}
UPSTREAM_STATUS = 418  # an upstream status no table uses: it stays unless the protocol has its own


def in_band(protocol: str, name: str) -> bytes:
    """An upstream's in-band error event of type (Gemini: status) ``name``, as each protocol sends one."""
    if protocol == "anthropic":
        return b"event: error\ndata: " + orjson.dumps({"type": "error", "error": {"type": name, "message": "boom"}}) \
            + b"\n\n"
    if protocol == "bedrock-converse":  # an exception frame, its type the stream member's name (throttlingException)
        return encode_frame({":message-type": "exception", ":exception-type": name[:1].lower() + name[1:],
                             ":content-type": "application/json"}, orjson.dumps({"message": "boom"}))
    if protocol == "openai-responses":  # response.failed: its error's code, or its type when it has a known one
        key = "type" if name.endswith(("_error", "insufficient_quota")) else "code"
        doc = {"type": "response.failed", "sequence_number": 3, "response": {"id": "resp_1", "status": "failed",
                                                                            "error": {key: name, "message": "boom"}}}
        return b"event: response.failed\ndata: " + orjson.dumps(doc) + b"\n\n"
    key = "status" if protocol == "gemini" else "type"  # Gemini: no code, so the name is what is read
    return b"data: " + orjson.dumps({"error": {key: name, "message": "boom"}}) + b"\n\n"


def client_body(protocol: str, row: Spelling, status: int) -> dict[str, Any]:
    if protocol == "bedrock-converse":  # the type is in x-amzn-ErrorType, not in the body
        return {"message": "boom"}
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": row.name, "message": "boom"}}
    if protocol == "gemini":
        return {"error": {"code": status, "message": "boom", "status": row.name}}
    return {"error": {"message": "boom", "type": row.name, "param": None, "code": row.code}}


ROWS = [(c, row) for c in REGISTRY for row in c.errors]
IDS = [f"{c.name}-{row.kind}-{row.name}" for c, row in ROWS]
WRITTEN = [(c, row) for c, row in ROWS if not row.read_only]


@pytest.mark.parametrize(("codec", "row"), ROWS, ids=IDS)
def test_an_upstream_in_band_error_is_read_by_the_first_row_of_its_name(codec: Codec, row: Spelling) -> None:
    """The stream decoder reads the name through the table: kind and status of its first row."""
    first = next(r for r in codec.errors if r.name == row.name)
    [failed] = [e for e in codec.stream_decoder().feed(in_band(codec.name, row.name)) if isinstance(e, ir.Failed)]
    assert (first.kind, first.status or USUAL[first.kind], "boom") == (
        failed.error.kind, failed.error.status, failed.error.message)


@pytest.mark.parametrize(("codec", "row"), WRITTEN, ids=[f"{c.name}-{row.kind}-{row.name}" for c, row in WRITTEN])
def test_an_upstream_error_of_the_rows_kind_reaches_the_client_spelt_by_the_row(codec: Codec, row: Spelling) -> None:
    """Name, status (the protocol's own, else the upstream's) and code come from the row."""
    err = codec.for_client(UpstreamError("boom", status=UPSTREAM_STATUS, kind=row.kind))
    status = row.status or UPSTREAM_STATUS
    assert (status, client_body(codec.name, row, status)) == (err.status, codec.error_body(err))
    usual = USUAL[row.kind]
    if kind_for_status(usual) == row.kind:  # the HTTP status itself: what a route's Lua or the upstream filter maps
        assert (row.status or usual) == codec.client_status(usual)


@pytest.mark.parametrize("codec", list(REGISTRY), ids=lambda c: c.name)
def test_an_unknown_name_reads_as_a_500_api_error(codec: Codec) -> None:
    """A type no row has is the upstream's server error, never a guess."""
    [failed] = [e for e in codec.stream_decoder().feed(in_band(codec.name, "no_such_error"))
                if isinstance(e, ir.Failed)]
    assert ("api_error", 500) == (failed.error.kind, failed.error.status)
