"""Google Vertex AI in front of the Gemini and Anthropic fakes, and Google's OAuth2 token endpoint.

    POST /token      a service account's signed JWT (RFC 7523) for an access token, as oauth2.googleapis.com
    POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
                                                                   :streamGenerateContent[?alt=sse]
                                                                   :countTokens
    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict | :streamRawPredict
    POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/count-tokens:rawPredict

Checked as Google checks them. The token endpoint verifies the assertion's RS256 signature with the
public key of a service account the test registered (``add_service_account``), its issuer, audience
(``https://oauth2.googleapis.com/token``), scope and times, and answers OAuth2's errors
(``invalid_grant`` …); the tokens it issues live ``token_lifetime_s``. A Vertex path that names no
method is Google's HTML 404; then the bearer token must be one it issued and still good (else 401
``UNAUTHENTICATED``), the project one it knows (else 403 ``PERMISSION_DENIED``), the publisher's method
one Vertex has (else 404 ``NOT_FOUND``), all in Google's error body ``{"error": {code, message, status}}``.
A Gemini body must hold only the fields of Vertex's request message (proto JSON: an unknown name is a
400), a Claude body ``anthropic_version: vertex-2023-10-16`` (Vertex's documented value; a dated
version, which anthropic's ``AnthropicVertex`` now sends, is let through); the model comes from the path. Vertex
answers a Claude model's quota errors (429) in Google's shape, the model's own errors in Anthropic's.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fakes.anthropic import AnthropicCodec
from fakes.codec import BadRequest, Call, Kind, Route, json_object
from fakes.gemini import GeminiCodec
from fakes.http import Response
from fakes.recording import RecordedRequest
from fakes.script import ErrorReply

AUDIENCE = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ANTHROPIC_VERSION = "vertex-2023-10-16"
# The version Vertex documents, or a dated one as the anthropic SDK's AnthropicVertex now sends.
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}")
PROJECT = "tokengate-test"
_PATH = re.compile(r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
                   r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)")
_METHODS: dict[tuple[str, str], tuple[Kind, bool]] = {
    ("google", "generateContent"): (Kind.GENERATE, False),
    ("google", "streamGenerateContent"): (Kind.GENERATE, True),
    ("google", "countTokens"): (Kind.COUNT, False),
    ("anthropic", "rawPredict"): (Kind.GENERATE, False),
    ("anthropic", "streamRawPredict"): (Kind.GENERATE, True),
}
# The fields of Vertex's GenerateContentRequest and CountTokensRequest (proto JSON: either spelling).
_GENERATE_FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "safetySettings",
                              "generationConfig", "labels", "cachedContent", "modelArmorConfig"})
_COUNT_FIELDS = frozenset({"model", "instances", "contents", "systemInstruction", "tools", "generationConfig"})
_UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                    "or other valid authentication credential. See "
                    "https://developers.google.com/identity/sign-in/web/devconsole-project.")
_HTML_404 = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
             "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not "
             "found on this server.  <ins>That\u2019s all we know.</ins>\n")
_JSON = [(b"content-type", b"application/json; charset=UTF-8")]


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def google_error(status: int, message: str, name: str) -> Response:
    """Google's error body, as every Google API answers."""
    return Response(status, list(_JSON), [orjson.dumps({"error": {"code": status, "message": message,
                                                                  "status": name}})])


class VertexGemini(GeminiCodec):
    """Gemini on Vertex: the Gemini fake's answers; a body with a field Vertex's message lacks is a 400."""

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        known = _COUNT_FIELDS if route.kind is Kind.COUNT else _GENERATE_FIELDS
        body = json_object(request)
        for name in body:
            if name not in known and name not in {_snake(k) for k in known}:
                raise BadRequest(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        return super().parse(request, route)


class VertexClaude(AnthropicCodec):
    """Claude on Vertex: Anthropic's Messages with the model in the path and Vertex's ``anthropic_version``;
    quota errors in Google's shape."""

    def parse(self, request: RecordedRequest, route: Route) -> Call:
        body = json_object(request)
        version = body.get("anthropic_version")
        if version != ANTHROPIC_VERSION and not (isinstance(version, str) and _DATED.fullmatch(version)):
            raise BadRequest(f"anthropic_version: Input should be '{ANTHROPIC_VERSION}'")
        if route.model is not None:  # rawPredict: the model is the path's (count-tokens names it in the body)
            body = {**body, "model": route.model}
        return super().parse(replace(request, body=orjson.dumps(body)), route)

    def error(self, err: ErrorReply, request_id: str) -> bytes:
        if err.status == 429:
            return orjson.dumps({"error": {"code": 429, "message": err.message, "status": "RESOURCE_EXHAUSTED"}})
        return super().error(err, request_id)


GEMINI = VertexGemini()
CLAUDE = VertexClaude()


@dataclass
class ServiceAccount:
    email: str
    key_id: str
    public_key: rsa.RSAPublicKey


@dataclass
class Vertex:
    """The fake's Google Cloud: service accounts, projects, the tokens issued (thread-safe enough: the
    tests' threads only register accounts and read counts)."""

    projects: set[str] = field(default_factory=lambda: {PROJECT})
    token_lifetime_s: int = 3600
    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    issued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_service_account(self, email: str, key_id: str, public_key: rsa.RSAPublicKey | bytes) -> None:
        """Accept assertions signed by this key (a PEM or a key object) for ``email``."""
        if isinstance(public_key, bytes):
            loaded = serialization.load_pem_public_key(public_key)
            assert isinstance(loaded, rsa.RSAPublicKey)
            public_key = loaded
        self.accounts[email] = ServiceAccount(email, key_id, public_key)

    def add_key_file(self, info: dict[str, Any]) -> None:
        """Accept the service account of a key file's contents (its private key's public half)."""
        private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        self.add_service_account(info["client_email"], info["private_key_id"], private.public_key())

    def new_service_account(self, token_uri: str, email: str = f"tokengate@{PROJECT}.iam.gserviceaccount.com",
                            ) -> dict[str, Any]:
        """A fresh key pair for a service account this fake accepts: the contents of its JSON key file, whose
        tokens are asked of ``token_uri`` (this fake's ``/token``)."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        self.add_service_account(email, key_id, private.public_key())
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": PROJECT, "private_key_id": key_id, "private_key": pem,
                "client_email": email, "client_id": "100000000000000000001", "token_uri": token_uri,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth"}

    def key_file(self, path: Path, token_uri: str) -> None:
        """Accept the service account whose key is in ``path``, first writing a new one there when there is none
        for ``token_uri`` (``python -m fakes --vertex-key-file``: the demo's Vertex providers)."""
        info = json.loads(path.read_text()) if path.exists() else None
        if not isinstance(info, dict) or info.get("token_uri") != token_uri:
            info = self.new_service_account(token_uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(info, indent=2))
            path.chmod(0o600)
        self.add_key_file(info)

    def token(self, request: RecordedRequest) -> Response:
        """The token endpoint: an access token for a valid assertion, or OAuth2's error."""
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_GRANT:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        claims = self._verified(form.get("assertion", ""))
        if isinstance(claims, Response):
            return claims
        if SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
            self.tokens[token] = now + self.token_lifetime_s
            self.issued += 1
        body = {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"}
        return Response(200, list(_JSON), [orjson.dumps(body)])

    def _verified(self, assertion: str) -> dict[str, Any] | Response:
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header, claims = orjson.loads(_b64(head_b64)), orjson.loads(_b64(claims_b64))
            signature = _b64(sig_b64)
        except ValueError:
            header = claims = None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return _oauth_error("invalid_grant", "Invalid JWT: not a JWS compact serialization.")
        account = self.accounts.get(str(claims.get("iss")))
        if account is None:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        if header.get("alg") != "RS256" or header.get("kid") != account.key_id:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        try:
            account.public_key.verify(signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                                      hashes.SHA256())
        except InvalidSignature:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (claims.get("aud") != AUDIENCE or not isinstance(iat, int) or not isinstance(exp, int)
                or iat > now + 60 or exp < now or exp - iat > 3600):
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and "
                                "in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
        return dict(claims)

    def route(self, request: RecordedRequest) -> Route | Response:
        """The route of a Vertex AI request, or the error Google would answer with."""
        m = _PATH.fullmatch(request.path) if request.method == "POST" else None
        if m is None:
            return Response(404, [(b"content-type", b"text/html; charset=UTF-8")],
                            [_HTML_404.format(path=request.path).encode()])
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            expiry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.monotonic():
            return google_error(401, _UNAUTHENTICATED, "UNAUTHENTICATED")
        resource = (f"projects/{m['project']}/locations/{m['location']}/publishers/{m['publisher']}"
                    f"/models/{m['model']}")
        if m["project"] not in self.projects:
            return google_error(403, f"Permission 'aiplatform.endpoints.predict' denied on resource "
                                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).", "PERMISSION_DENIED")
        if (m["publisher"], m["method"]) == ("anthropic", "rawPredict") and m["model"] == "count-tokens":
            return Route(CLAUDE, Kind.COUNT)
        found = _METHODS.get((m["publisher"], m["method"]))
        if found is None:
            return google_error(404, f"Publisher Model `{resource}` was not found or your project does not have "
                                "access to it.", "NOT_FOUND")
        kind, stream = found
        return Route(GEMINI if m["publisher"] == "google" else CLAUDE, kind, model=m["model"], stream=stream)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _oauth_error(error: str, description: str) -> Response:
    return Response(400, list(_JSON), [orjson.dumps({"error": error, "error_description": description})])
