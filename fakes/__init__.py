"""Fake LLM providers speaking the exact OpenAI (Chat Completions and Responses), Anthropic and Gemini
wire formats.

One HTTP/1.1 server answers every protocol by path, echoes by default and
can be scripted per request (``Reply``); see ``fakes.server`` for the runners
and the control API, ``fakes.script`` for what can be scripted.
"""

from fakes.recording import RecordedRequest
from fakes.remote import RemoteFake
from fakes.script import ErrorReply, Reply, ToolCall, Usage
from fakes.server import DEFAULT_MODELS, FakeProvider

__all__ = [
    "DEFAULT_MODELS",
    "ErrorReply",
    "FakeProvider",
    "RecordedRequest",
    "RemoteFake",
    "Reply",
    "ToolCall",
    "Usage",
]
