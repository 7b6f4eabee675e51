"""Reading a Converse answer as it passes (no client speaks Converse, so only for completeness and tests): usage
from ``metadata``, the stop from ``messageStop``; an exception frame ends it unfinished."""

from __future__ import annotations

from translator.eventstream import Frame
from translator.ir import Json, parse_json
from translator.protocols.base import Observer
from translator.protocols.bedrock_converse import usage
from translator.sse import SSEEvent


class ConverseObserver(Observer):
    def document(self, doc: Json) -> None:
        self.usage = self.usage.merge(usage.read(doc.get("usage")))
        if isinstance(doc.get("stopReason"), str):
            self.finish = doc["stopReason"]

    def event(self, ev: SSEEvent) -> bool:
        if isinstance(ev, Frame) and ev.message_type != "event":
            self.failed = True
        elif ev.event in ("messageStop", "metadata"):
            doc = parse_json(ev.data)
            if isinstance(doc, dict):
                self.document(doc)
            self.complete = self.complete or ev.event == "metadata"
        return True
