"""The registry: every protocol the gateway speaks, one codec each (docs/architecture.md).

A protocol is a folder here (``openai/``, ``anthropic/``, ``gemini/``, ``openai_responses/``) whose ``CODEC``
implements ``base.Codec``; adding one is a folder and a line in ``REGISTRY`` below
(and, for providers to speak it, its name in ``core.protocols.Protocol``). Asked for a
name it does not know, the registry raises; it never falls back silently — except for
the one *fallback* protocol, named here, that a caller nothing else identifies speaks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import parse_qs

from translator.errors import GatewayError
from translator.protocols import anthropic, bedrock_converse, gemini, openai, openai_responses
from translator.protocols.base import Codec, Endpoint, Json

MAX_REMEMBERED_PATHS = 4096


class Registry:
    def __init__(self, *codecs: Codec, fallback: Codec) -> None:
        self.fallback = fallback
        self._codecs: list[Codec] = []
        self._by_name: dict[str, Codec] = {}
        self.match_order: tuple[Codec, ...] = ()
        # Every header a caller may carry its key in, besides ``Authorization``, in registry order.
        self.key_headers: tuple[str, ...] = ()
        # POST paths seen -> their endpoint (a POST's depends on its path alone; cleared when protocols change)
        self._posts: dict[str, Endpoint | None] = {}
        for c in codecs:
            self.add(c)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._by_name)}; fallback {self.fallback.name})"

    def __iter__(self) -> Iterator[Codec]:
        return iter(self._codecs)

    def add(self, codec: Codec) -> None:
        """Register ``codec`` (at start-up; tests add toy protocols and remove them again)."""
        if codec.name in self._by_name:
            raise ValueError(f"protocol {codec.name!r} is registered twice")
        self._codecs.append(codec)
        self._by_name[codec.name] = codec
        self._reorder()

    def remove(self, codec: Codec) -> None:
        self._codecs.remove(codec)
        del self._by_name[codec.name]
        self._reorder()

    def _reorder(self) -> None:
        # A path several protocols share (GET /v1/models) goes to whoever its headers name first;
        # the fallback takes what is left.
        self.match_order = (*(c for c in self._codecs if c is not self.fallback), self.fallback)
        self.key_headers = tuple(h for c in self._codecs for h in c.key_headers)
        self._posts = {}

    def get(self, name: str) -> Codec:
        """The codec of protocol ``name``; a ``GatewayError`` for a name no codec has."""
        try:
            return self._by_name[name]
        except KeyError:
            raise GatewayError(f"no codec for protocol {name!r}") from None

    @property
    def clients(self) -> tuple[Codec, ...]:
        """The protocols callers speak (an upstream-only protocol, such as Bedrock Converse, claims no endpoint)."""
        return tuple(c for c in self._codecs if c.body_routes)

    def find(self, name: str) -> Codec | None:
        return self._by_name.get(name)

    # --- what the registry as a whole answers ------------------------------------------

    def classify(self, method: str, full_path: str, headers: Mapping[str, str]) -> Endpoint | None:
        """The endpoint for ``method`` and ``full_path`` (query included), or None: not ours (404)."""
        remember = method == "POST" and "key=" not in full_path  # a caller's key stays out of memory
        if remember and full_path in self._posts:
            return self._posts[full_path]
        ep = self._classify(method, full_path, headers)
        if remember:
            if len(self._posts) >= MAX_REMEMBERED_PATHS:  # junk paths, many models: start afresh
                self._posts.clear()
            self._posts[full_path] = ep
        return ep

    def _classify(self, method: str, full_path: str, headers: Mapping[str, str]) -> Endpoint | None:
        path, _, query = full_path.partition("?")
        q = parse_qs(query) if query else {}
        for codec in self.match_order:
            if (ep := codec.endpoint(method, path, q, headers)) is not None:
                return ep
        return None

    def body_routes(self) -> dict[str, tuple[Codec, Json]]:
        """Body-carrying endpoints -> (protocol, Envoy route match), rendered into Envoy's routes."""
        return {name: (c, match) for c in self._codecs for name, match in c.body_routes.items()}

    def listing_routes(self) -> dict[str, Json]:
        """Bodiless listing endpoints -> Envoy route match (protocols sharing a path agree on its match)."""
        out: dict[str, Json] = {}
        for c in self._codecs:
            for name, match in c.listing_routes.items():
                if out.setdefault(name, match) != match:
                    raise ValueError(f"protocols disagree on the route {name!r}")
        return out


REGISTRY = Registry(
    openai.CODEC,
    anthropic.CODEC,
    gemini.CODEC,
    openai_responses.CODEC,
    bedrock_converse.CODEC,  # upstream only: no client endpoint
    fallback=openai.CODEC,  # no header of its own: the protocol of a caller nothing else identifies
)
