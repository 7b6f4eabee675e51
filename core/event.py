"""The metering event: one per admitted request, from the translator to the settler.

Its type is ``MeteringEvent``, generated from ``proto/tokengate/metering/v1/event.proto``
(``proto/generate.py`` writes ``core/_gen/``). This module says how it is written where
it goes, and reads every version that a stream or a file may still hold:

    where                                written as                              version 0 wrote
    the tg:metering stream entry         field "pb": the serialized event        field "event": JSON
    a spool segment or in-flight line    base64 of the serialized event + "."    a JSON object
    the SETTLE script, tg:{a}:requests   ``as_json``: one JSON object, version 0's keys and "version"

Versions. ``VERSION`` is what this code writes, ``READS`` what the settler applies.
Version 0 is the JSON object translators wrote before ``proto/`` existed (no "version"
key): the same fields under the same names, meaning the same. Adding a field (a new
number) keeps the version: a reader ignores the fields it does not know, so an older
settler still reads a newer event. A field that changes meaning takes a new version, and
a settler that does not read it refuses the event (dead letters: kept, not applied).
Never renumber, retype or reuse a field; reserve the number of one removed.

A line ends with "." so that a line cut short (a kill or a full disk mid-write) is never
read as an event: base64 of a cut message can still be a valid, shorter message.
"""

from __future__ import annotations

import binascii
import itertools
import os
from collections.abc import Mapping
from typing import Any

import orjson
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from core.usage import BUCKETS, Usage

try:
    from core._gen.tokengate.metering.v1.event_pb2 import MeteringEvent
    from core._gen.tokengate.metering.v1.event_pb2 import Usage as UsageMessage
except ImportError as exc:  # a checkout where proto/ was never compiled
    raise ImportError(f"{exc}: the generated code is missing or stale; run `make venv` (or "
                      "`.venv/bin/python proto/generate.py`)") from exc

__all__ = ["ENTRY_FIELD", "LEGACY_ENTRY_FIELD", "LINE_END", "READS", "VERSION", "BadEvent", "MeteringEvent",
           "UsageMessage", "as_json", "entry", "entry_data", "entry_of_line", "from_entry", "from_json",
           "from_json_bytes", "from_line", "line", "new_id", "parse", "set_usage", "usage"]

VERSION = 1
READS = frozenset({0, 1})
ENTRY_FIELD = "pb"
LEGACY_ENTRY_FIELD = "event"  # version 0's stream entries
LINE_END = b"."


class BadEvent(ValueError):
    """Bytes that hold no metering event of any version."""


# --- building ---------------------------------------------------------------------------------

_id_prefix = os.urandom(8).hex()
_id_count = itertools.count()


def _new_prefix() -> None:
    global _id_prefix, _id_count
    _id_prefix, _id_count = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_new_prefix)  # a forked child never counts on from its parent's ids


def new_id() -> str:
    """A new event id: 32 hex digits, a random prefix drawn once per process and a count (no system call
    a request, as ``os.urandom`` makes). Unique across processes and restarts as 64 random bits are."""
    return f"{_id_prefix}{next(_id_count):016x}"


def set_usage(ev: MeteringEvent, u: Usage) -> None:
    """``ev.usage`` becomes ``u``: its set buckets set, the others unset (in place: half the time of a
    new message copied in)."""
    m = ev.usage
    m.Clear()
    if u.input is not None:
        m.input = u.input
    if u.cache_read is not None:
        m.cache_read = u.cache_read
    if u.cache_write is not None:
        m.cache_write = u.cache_write
    if u.output is not None:
        m.output = u.output
    if u.reasoning is not None:
        m.reasoning = u.reasoning


def usage(ev: MeteringEvent) -> Usage:
    m = ev.usage
    return Usage(*(getattr(m, b) if m.HasField(b) else None for b in BUCKETS))


# --- the stream -------------------------------------------------------------------------------


def entry(data: bytes) -> dict[str, bytes]:
    """The tg:metering entry of a serialized event."""
    return {ENTRY_FIELD: data}


def entry_data(fields: Mapping[Any, Any]) -> Any:
    """The serialized event of a tg:metering entry (field names as bytes or str); None for a version-0 entry."""
    return fields.get(b"pb", fields.get("pb"))


def from_entry(fields: Mapping[Any, Any]) -> MeteringEvent:
    """The event of a tg:metering entry, of any version (field names as bytes or str)."""
    data = entry_data(fields)
    if data is not None:
        return parse(data)
    raw = fields.get(b"event", fields.get("event"))
    if raw is not None:
        return from_json_bytes(raw)
    raise BadEvent("the entry holds no event (neither a 'pb' nor an 'event' field)")


def parse(data: bytes) -> MeteringEvent:
    try:
        return MeteringEvent.FromString(data)
    except DecodeError as exc:
        raise BadEvent(f"not a serialized MeteringEvent: {exc}") from None


# --- files: the spool and the in-flight file --------------------------------------------------


def line(data: bytes) -> bytes:
    """A serialized event as a line of a spool segment (and, after a "+", of the in-flight file)."""
    return binascii.b2a_base64(data, newline=False) + b".\n"


def from_line(raw: bytes) -> MeteringEvent:
    """The event of a line (without its newline), of any version."""
    if raw.startswith(b"{"):
        return from_json_bytes(raw)
    return parse(_data(raw))


def entry_of_line(raw: bytes) -> dict[str, bytes]:
    """The tg:metering entry for a line, as the version that wrote the line would have made it."""
    if raw.startswith(b"{"):
        return {LEGACY_ENTRY_FIELD: raw}
    return entry(_data(raw))


def _data(raw: bytes) -> bytes:
    if not raw.endswith(LINE_END):
        raise BadEvent("the line is cut short (it does not end with '.')")
    try:
        return binascii.a2b_base64(raw[:-1], strict_mode=True)
    except binascii.Error as exc:
        raise BadEvent(f"the line is not base64: {exc}") from None


# --- JSON: version 0, and what the settle script reads ----------------------------------------


def from_json_bytes(raw: bytes | str) -> MeteringEvent:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"the event is not JSON: {exc}") from None
    return from_json(doc)


_INTS = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_INT32,
                   FieldDescriptor.TYPE_UINT64})


def _fields(doc: Mapping[str, Any], fields: Any, prefix: str) -> dict[str, Any]:
    """``doc``'s values for the message ``fields`` (a descriptor's ``fields_by_name``), type-checked.
    Unknown keys are ignored, null is unset."""
    out: dict[str, Any] = {}
    for name, v in doc.items():
        f = fields.get(name)
        if f is None or v is None:
            continue
        what = prefix + name
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if not isinstance(v, dict):
                raise BadEvent(f"{what} is not an object")
            v = GetMessageClass(f.message_type)(**_fields(v, f.message_type.fields_by_name, what + "."))
        elif f.type in _INTS:
            if not isinstance(v, int) or isinstance(v, bool):
                raise BadEvent(f"{what} is not an integer: {v!r}")
        elif f.type == FieldDescriptor.TYPE_DOUBLE:
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise BadEvent(f"{what} is not a number: {v!r}")
        elif f.type == FieldDescriptor.TYPE_BOOL:
            if not isinstance(v, bool):
                raise BadEvent(f"{what} is not true or false: {v!r}")
        elif not isinstance(v, str):
            raise BadEvent(f"{what} is not a string: {v!r}")
        out[name] = v
    return out


def from_json(doc: Any) -> MeteringEvent:
    """A JSON object with the event's keys: version 0's events (and ``as_json``'s)."""
    if not isinstance(doc, dict):
        raise BadEvent("the event is not a JSON object")
    try:
        return MeteringEvent(**_fields(doc, MeteringEvent.DESCRIPTOR.fields_by_name, ""))
    except (TypeError, ValueError) as exc:  # out of range for its field
        raise BadEvent(str(exc)) from None


def as_json(ev: MeteringEvent) -> dict[str, Any]:
    """The event as one JSON object: what the SETTLE script reads (cjson), the recent requests keep and
    the request log writes. Version 0's keys, in its order, and "version"."""
    u = ev.usage
    return {
        "version": ev.version,
        "event_id": ev.event_id,
        "request_id": ev.request_id,
        "account": ev.account,
        "key_id": ev.key_id,
        "model": ev.model,
        "deployment": ev.deployment,
        "attempts": ev.attempts,
        "protocol": ev.protocol,
        "upstream_protocol": ev.upstream_protocol,
        "status": ev.status,
        "stream": ev.stream,
        "complete": ev.complete,
        "cut_short": ev.cut_short,
        "finish": ev.finish if ev.HasField("finish") else None,
        "usage": {b: getattr(u, b) for b in BUCKETS if u.HasField(b)},
        "usage_estimated": ev.usage_estimated,
        "hold_nano": ev.hold_nano,
        "lease": ev.lease,
        "cost_nano": ev.cost_nano,
        "duration_ms": ev.duration_ms,
        "ts": ev.ts,
    }
