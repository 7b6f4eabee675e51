"""Reading a same-protocol Anthropic answer as it passes: usage and ``stop_reason`` from
``message_start`` and ``message_delta``, the end from ``message_stop``; an ``error`` event
ends it unfinished, with nothing appended after it (the upstream already said why)."""

from __future__ import annotations

from translator.ir import Json, parse_json
from translator.protocols.anthropic import usage
from translator.protocols.base import Observer
from translator.sse import SSEEvent


class AnthropicObserver(Observer):
    def document(self, doc: Json) -> None:
        self.usage = self.usage.merge(usage.read(doc.get("usage")))
        if doc.get("stop_reason"):
            self.finish = doc["stop_reason"]

    def event(self, ev: SSEEvent) -> bool:
        if ev.event == "message_stop":
            self.complete = True
        elif ev.event == "error":
            self.failed = True
        elif ev.event == "message_start":
            doc = parse_json(ev.data)
            if isinstance(doc, dict) and isinstance(doc.get("message"), dict):
                self.document(doc["message"])
        elif ev.event == "message_delta":
            doc = parse_json(ev.data)
            if isinstance(doc, dict) and doc:
                self.usage = self.usage.merge(usage.read(doc.get("usage")))
                delta = doc.get("delta") or {}
                if isinstance(delta, dict) and delta.get("stop_reason"):
                    self.finish = delta["stop_reason"]
        return True
