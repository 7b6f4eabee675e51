"""Reading a same-protocol Gemini answer as it passes: ``usageMetadata`` (a running total) and
``finishReason``, which is also the stream's end (Gemini has no end event)."""

from __future__ import annotations

from translator.ir import Json, parse_json
from translator.protocols.base import Observer
from translator.protocols.gemini import usage
from translator.sse import SSEEvent


class GeminiObserver(Observer):
    def document(self, doc: Json) -> None:
        self.usage = self.usage.merge(usage.read(doc.get("usageMetadata")))
        for c in doc.get("candidates") or ():
            if isinstance(c, dict) and c.get("finishReason"):
                self.finish = c["finishReason"]
                self.complete = True

    def event(self, ev: SSEEvent) -> bool:
        if ev.data:
            doc = parse_json(ev.data)
            if isinstance(doc, dict) and doc:
                self.document(doc)
        return True
