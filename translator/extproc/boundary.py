"""The one place exceptions become answers.

Every ext_proc message is handled by a per-request processor (``RouterProcessor``,
``UpstreamAttempt``) inside the servicer's one ``try``; whatever escapes is turned into
a ``UserFacingError`` here (an unexpected exception: logged, and a 500 ``api_error``)
and handed back to the processor's ``fail``, which knows how far the answer got:

    nothing sent yet      an ImmediateResponse in the caller's error shape (``Codec.error_response``)
    the answer started    the caller's in-band error event (``Codec.error_event``), the rest swallowed

An upstream stream that ends early or sends its own error is not an exception: it is
an event of the answer (``ir.Failed``, ``errors.cut_short``), which the caller's codec
frames like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol as TypingProtocol

import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from translator.errors import UserFacingError
from translator.tracing import Trace

log = structlog.get_logger("tokengate.extproc")
INTERNAL = UserFacingError("The gateway failed to process this request.", status=500)


class Processor(TypingProtocol):
    """One filter's handling of one HTTP request (one ``Process`` stream)."""

    role: str  # which filter: names its log events
    trace: Trace | None  # the stream's span, when Envoy traces the request

    def on(self, req: pb.ProcessingRequest) -> Awaitable[pb.ProcessingResponse]:
        """Dispatch one message on ``WhichOneof("request")``."""

    def fail(self, req: pb.ProcessingRequest, err: UserFacingError) -> pb.ProcessingResponse:
        """``err`` as the answer to ``req``, in the caller's protocol."""

    def answered(self, req: pb.ProcessingRequest, resp: pb.ProcessingResponse) -> bool:
        """Whether Envoy will send nothing more for the request once ``resp`` went out."""

    def close(self) -> None:
        """The stream ended (answered, or given up by Envoy or the client)."""


def user_facing(exc: Exception, proc: Processor, req: pb.ProcessingRequest) -> UserFacingError:
    """What a client may be told of ``exc``."""
    if isinstance(exc, UserFacingError):
        return exc
    log.exception(f"{proc.role}_failed", processor=repr(proc), message=req.WhichOneof("request"))
    return INTERNAL
