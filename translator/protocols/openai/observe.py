"""Reading a same-protocol OpenAI answer as it passes: usage, ``finish_reason``, ``[DONE]``.

Only chunks that can carry usage or a finish are parsed (a substring test first). The usage
chunk (``choices: []``) the gateway asked for on a caller's behalf is dropped when stripping.
"""

from __future__ import annotations

from translator.ir import Json, parse_json
from translator.protocols.base import Observer
from translator.protocols.openai import usage
from translator.sse import SSEEvent


class OpenAIObserver(Observer):
    def __init__(self, *, strip_usage_chunk: bool) -> None:
        super().__init__()
        self.strips = strip_usage_chunk

    def document(self, doc: Json) -> None:
        self.usage = self.usage.merge(usage.read(doc.get("usage")))
        for c in doc.get("choices") or ():
            if isinstance(c, dict) and c.get("finish_reason"):
                self.finish = c["finish_reason"]

    def event(self, ev: SSEEvent) -> bool:
        data = ev.data
        if data == "[DONE]":
            self.complete = True
            return True
        if '"usage":' not in data and '"finish_reason":"' not in data.replace(" ", ""):
            return True
        doc = parse_json(data)
        if not isinstance(doc, dict):
            return True
        self.document(doc)
        usage_chunk = doc.get("usage") and not doc.get("choices")
        return not (self.strips and usage_chunk)
