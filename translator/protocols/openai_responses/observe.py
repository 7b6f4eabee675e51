"""Reading a same-protocol Responses answer as it passes: usage and status from its last event.

Only the lifecycle events that end a stream are parsed (by their ``event:`` name, no JSON read
otherwise): ``response.completed`` and ``response.incomplete`` carry the usage and end the answer;
``response.failed`` carries the usage so far and ends it unfinished (no cut-short error follows it).
An error the gateway adds after the events takes the next sequence number (events are counted).
"""

from __future__ import annotations

from translator.errors import UserFacingError
from translator.ir import Json, parse_json
from translator.protocols.base import Observer
from translator.protocols.openai_responses import usage
from translator.protocols.openai_responses.errors import error_event
from translator.sse import SSEEvent

_LAST = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesObserver(Observer):
    def __init__(self) -> None:
        super().__init__()
        self._events = 0  # events passed: the sequence number an event of ours after them takes

    def document(self, doc: Json) -> None:
        self.usage = self.usage.merge(usage.read(doc.get("usage")))
        details = doc.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        status = doc.get("status")
        self.finish = reason if isinstance(reason, str) else status if isinstance(status, str) else None

    def event(self, ev: SSEEvent) -> bool:
        self._events += 1
        if ev.event not in _LAST:
            return True
        doc = parse_json(ev.data)
        resp = doc.get("response") if isinstance(doc, dict) else None
        if isinstance(resp, dict):
            self.document(resp)
            self.complete = ev.event != "response.failed"
            self.failed = not self.complete
        return True

    def error_event(self, err: UserFacingError) -> bytes:
        return error_event(err, self._events)
