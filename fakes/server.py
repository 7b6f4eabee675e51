"""``FakeProvider``: one scripted fake of every provider API, and its runners.

    with FakeProvider.running() as fake:                  # own loop, daemon thread
        fake.push(Reply(text="hi", delay_between=0.01))
        client = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="x")
        ...
        assert fake.requests[0].json()["model"] == "gpt-4o-mini"

    fake = FakeProvider(); await fake.start(); ...; await fake.stop()  # in-loop

Each request is recorded, routed (``fakes.routes``), parsed by its codec, given
the first queued ``Reply`` that matches it (or the echo) and answered; model
lists are static and never consume a reply. Paths under ``/_fake/`` are the
control API, never recorded:

    POST /_fake/push      a Reply in its JSON form, or a list of them
    GET  /_fake/requests  the recorded requests, oldest first
    POST /_fake/reset     forget queued replies and recorded requests

AWS Bedrock's paths (``/model/…``: the SigV4 signature or API key, the Converse body) are checked by
``fakes.bedrock``. Azure OpenAI's paths (``/openai/…``) are checked and routed by ``fakes.azure``; Vertex AI's
(``/v1/projects/…``) and Google's token endpoint (``POST /token``, not recorded: a translator asks it
in the background) by ``fakes.vertex``, whose state is ``fake.vertex``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from threading import Thread
from typing import Any

import orjson

from fakes import azure, bedrock, quirks, vertex
from fakes.codec import BadRequest, Kind, Route
from fakes.http import Response, serve_connection
from fakes.recording import RecordedRequest, Recorder
from fakes.respond import ECHO, error_response, respond
from fakes.routes import guess_codec, route
from fakes.script import ErrorReply, Reply, ScriptQueue

DEFAULT_MODELS = ("demo-echo", "gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")

_log = logging.getLogger("fakes")
_JSON = ((b"content-type", b"application/json"),)


class FakeProvider:
    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, record_limit: int = 10_000,
                 azure_key: str = azure.AZURE_KEY, bedrock_api_key: str = bedrock.API_KEY) -> None:
        self.models = tuple(models)
        self.azure_key = azure_key  # the api-key Azure OpenAI's paths (/openai/…) accept
        self.bedrock_api_key = bedrock_api_key  # the Bedrock API key AWS Bedrock's paths (/model/…) accept
        self.vertex = vertex.Vertex()  # Vertex AI's service accounts, projects and tokens (fakes.vertex)
        self._script = ScriptQueue()
        self._recorder = Recorder(record_limit)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._address = ("127.0.0.1", 0)

    def __repr__(self) -> str:
        state = f"serving {self.base_url}" if self._server is not None else "stopped"
        return f"FakeProvider({state}, pending={len(self.pending)})"

    # -- scripting and recording (thread-safe) --------------------------------

    def push(self, *replies: Reply) -> None:
        """Queue replies; each request consumes the first queued one that matches it."""
        for reply in replies:
            self._script.push(reply)

    @property
    def pending(self) -> list[Reply]:
        """Replies not consumed yet."""
        return self._script.pending()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        return self._recorder.snapshot()

    def clear(self) -> None:
        """Forget the recorded requests."""
        self._recorder.clear()

    def reset(self) -> None:
        """Forget the recorded requests and the queued replies."""
        self._recorder.clear()
        self._script.clear()

    # -- serving --------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def base_url(self) -> str:
        host = self._address[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._on_connection, host, port)
        bound = self._server.sockets[0].getsockname()
        self._address = (host, bound[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> Iterator[FakeProvider]:
        """Serve on a fresh event loop in a daemon thread for the ``with`` block."""
        fake = cls(**kwargs)
        ready: Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = Future()

        async def serve() -> None:
            stopping = asyncio.Event()
            try:
                await fake.start(host, port)
            except Exception as exc:  # e.g. the port is taken: raise it in the caller
                ready.set_exception(exc)
                return
            ready.set_result((asyncio.get_running_loop(), stopping))
            try:
                await stopping.wait()
            finally:
                await fake.stop()

        thread = Thread(target=asyncio.run, args=(serve(),), name="fake-provider", daemon=True)
        thread.start()
        loop, stopping = ready.result(timeout=10)
        try:
            yield fake
        finally:
            loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout=10)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve_connection(reader, writer, self.handle)
        except asyncio.CancelledError:
            pass  # stop() cancels open connections; 3.11's start_server chokes on a cancelled task
        finally:
            self._connections.discard(task)

    # -- the application ------------------------------------------------------

    async def handle(self, request: RecordedRequest) -> Response:
        """Answer one request (the HTTP layer calls this); a bug here is a plain 500."""
        try:
            return self._answer(request)
        except Exception:
            _log.exception("fake provider failed on %s %s", request.method, request.target)
            return Response(500, [(b"content-type", b"text/plain")], [b"fake provider bug"])

    def _answer(self, request: RecordedRequest) -> Response:
        if request.path.startswith("/_fake/"):
            return self._control(request)
        if (request.method, request.path) == ("POST", "/token"):  # Google's OAuth2 token endpoint
            return self.vertex.token(request)
        self._recorder.add(request)
        _log.info("%s %s", request.method, request.target)
        if request.path.startswith("/openai/"):  # Azure OpenAI's paths (fakes.azure)
            checked = azure.route(request, self.azure_key)
            if isinstance(checked, Response):
                return checked
            found: Route | None = checked
        elif request.path.startswith("/v1/projects/"):  # Vertex AI's paths (fakes.vertex)
            routed = self.vertex.route(request)
            if isinstance(routed, Response):
                return routed
            found = routed
        elif request.path.startswith("/model/"):  # AWS Bedrock's paths (fakes.bedrock)
            signed = bedrock.route(request, self.bedrock_api_key)
            if isinstance(signed, Response):
                return signed
            found = signed
        elif quirks.serves(request.path):  # OpenAI-compatible providers with their quirks (fakes.quirks)
            checked_quirks = quirks.route(request)
            if isinstance(checked_quirks, Response):
                return checked_quirks
            found = checked_quirks
        else:
            found = route(request.method, request.path, request.headers)
        if found is None:
            codec = guess_codec(request.path, request.headers)
            message = f"Invalid URL ({request.method} {request.path})"
            return error_response(codec, ErrorReply(404, message))
        codec = found.codec
        if found.kind is Kind.MODELS:
            return Response(200, list(codec.json_headers), [codec.models(self.models)])
        try:
            call = codec.parse(request, found)
        except BadRequest as exc:
            return error_response(codec, ErrorReply(400, str(exc)))
        reply = self._script.take(call.model, request.target) or ECHO
        return respond(codec, call, reply)

    def _control(self, request: RecordedRequest) -> Response:
        key = (request.method, request.path)
        if key == ("POST", "/_fake/push"):
            try:
                payload = request.json()
                items = payload if isinstance(payload, list) else [payload]
                replies = [Reply.from_json(item) for item in items]
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                return _json(400, {"error": str(exc)})
            self.push(*replies)
            return _json(200, {"pending": len(self.pending)})
        if key == ("GET", "/_fake/requests"):
            return _json(200, [r.to_json() for r in self.requests])
        if key == ("POST", "/_fake/reset"):
            self.reset()
            return _json(200, {"pending": 0})
        return _json(404, {"error": f"no control endpoint {request.method} {request.path}"})


def _json(status: int, payload: Any) -> Response:
    return Response(status, list(_JSON), [orjson.dumps(payload)])
