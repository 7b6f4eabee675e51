"""``RemoteFake``: script a fake provider that runs in another process.

    with RemoteFake("http://127.0.0.1:9100") as fake:
        fake.push(Reply(text="hi"))
        ...
        assert fake.requests[-1].json()["model"] == "demo-echo"

Same scripting surface as ``FakeProvider`` (``push``, ``requests``, ``reset``),
spoken over the control API (``/_fake/...``).
"""

from __future__ import annotations

from types import TracebackType

import httpx

from fakes.recording import RecordedRequest
from fakes.script import Reply


class RemoteFake:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"RemoteFake({self.base_url!r})"

    def __enter__(self) -> RemoteFake:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def push(self, *replies: Reply) -> None:
        """Queue replies in the remote fake."""
        response = self._client.post("/_fake/push", json=[r.to_json() for r in replies])
        response.raise_for_status()

    @property
    def requests(self) -> list[RecordedRequest]:
        """The remote fake's recorded requests, oldest first."""
        response = self._client.get("/_fake/requests")
        response.raise_for_status()
        return [RecordedRequest.from_json(item) for item in response.json()]

    def reset(self) -> None:
        """Forget the remote fake's queued replies and recorded requests."""
        self._client.post("/_fake/reset").raise_for_status()
