"""Every request the fake receives, exactly as it arrived.

``RecordedRequest`` is also what the HTTP layer hands the router, so recording
costs one append. ``Recorder`` keeps the newest ``limit`` requests (a long
benchmark must not grow without bound) behind a lock: the server's event loop
appends while a test thread reads snapshots.
"""

from __future__ import annotations

import base64
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    target: str  # path and query, as sent
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lowercased names; repeated headers joined with ", "
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def to_json(self) -> dict[str, Any]:
        """Control API form: ``body`` as text for people, ``body_b64`` exact."""
        return {
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "query": dict(self.query),
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", "replace"),
            "body_b64": base64.b64encode(self.body).decode(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecordedRequest:
        return cls(
            method=obj["method"],
            target=obj["target"],
            path=obj["path"],
            query=obj["query"],
            headers=obj["headers"],
            body=base64.b64decode(obj["body_b64"]),
        )


class Recorder:
    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=limit)

    def add(self, request: RecordedRequest) -> None:
        with self._lock:
            self._items.append(request)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
