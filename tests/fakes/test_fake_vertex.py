"""The Vertex AI fake checks what Google checks (the token endpoint's signed assertion, the bearer token,
project, publisher and method, Vertex's body fields), and the official Vertex clients — google-genai with
``vertexai=True`` and anthropic's ``AnthropicVertex``, both with google-auth service-account credentials
whose token endpoint is the fake's — read it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from google import genai
from google.genai import types
from google.oauth2 import service_account

from fakes import FakeProvider, Reply
from fakes import vertex as fake_vertex

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
V1 = "/v1/projects/tokengate-test/locations/us-east5/publishers"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as f:
        yield f


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProvider) -> None:
    fake.reset()
    fake.vertex.token_lifetime_s = 3600


@pytest.fixture
def creds(fake: FakeProvider, tmp_path: Path) -> Any:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(fake.vertex.new_service_account(fake.base_url + "/token")))
    return service_account.Credentials.from_service_account_file(str(path), scopes=SCOPES)  # type: ignore[no-untyped-call]


def token(creds: Any) -> str:
    from google.auth.transport.requests import Request

    creds.refresh(Request())
    return str(creds.token)


def post(fake: FakeProvider, path: str, body: Any, bearer: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(fake.base_url + path, json=body, headers=headers)


GEN = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
MSG = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_google_genai_vertex_client_reads_generate_and_stream(fake: FakeProvider, creds: Any) -> None:
    client = genai.Client(vertexai=True, project="tokengate-test", location="us-east5", credentials=creds,
                          http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1"))
    fake.push(Reply(text="Bonjour !"))
    assert "Bonjour !" == client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    fake.push(Reply(text="one two three"))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="count"))
    assert "one two three" == "".join(c.text or "" for c in chunks)
    sent = fake.requests[-1]
    assert (f"{V1}/google/models/gemini-2.5-flash:streamGenerateContent", "sse") == (sent.path, sent.query["alt"])
    assert sent.headers["authorization"] == f"Bearer {creds.token}"
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="one two").total_tokens


def test_anthropic_vertex_client_reads_messages_stream_and_count(fake: FakeProvider, creds: Any) -> None:
    client = anthropic.AnthropicVertex(region="us-east5", project_id="tokengate-test", credentials=creds,
                                       base_url=fake.base_url + "/v1", max_retries=0)
    fake.push(Reply(text="Bonjour !"))
    m = client.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=16,
                               messages=[{"role": "user", "content": "hi"}])
    assert ("Bonjour !", "claude-sonnet-4-5@20250929") == (m.content[0].text, m.model)  # type: ignore[union-attr]
    sent = fake.requests[-1]
    assert f"{V1}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict" == sent.path
    assert "model" not in sent.json() and sent.json()["anthropic_version"]  # the SDK's; the gateway sends Vertex's
    with client.messages.stream(model="claude-sonnet-4-5@20250929", max_tokens=16,
                                messages=[{"role": "user", "content": "hi"}]) as s:
        assert "echo: hi" == s.get_final_text()
    assert fake.requests[-1].path.endswith(":streamRawPredict")
    n = client.messages.count_tokens(model="claude-sonnet-4-5@20250929", messages=[{"role": "user", "content": "a"}])
    assert n.input_tokens > 0 and fake.requests[-1].path == f"{V1}/anthropic/models/count-tokens:rawPredict"


@pytest.mark.parametrize(("path", "bearer", "status", "name"), [
    (f"{V1}/google/models/g:generateContent", None, 401, "UNAUTHENTICATED"),
    (f"{V1}/google/models/g:generateContent", "ya29.made-up", 401, "UNAUTHENTICATED"),
    ("/v1/projects/someone-else/locations/us-east5/publishers/google/models/g:generateContent", "good", 403,
     "PERMISSION_DENIED"),
    (f"{V1}/google/models/g:rawPredictX", "good", 404, "NOT_FOUND"),
    (f"{V1}/anthropic/models/c:generateContent", "good", 404, "NOT_FOUND"),
], ids=["no-token", "unknown-token", "other-project", "unknown-method", "wrong-publisher"])
def test_googles_errors(fake: FakeProvider, creds: Any, path: str, bearer: str | None, status: int, name: str) -> None:
    r = post(fake, path, GEN, token(creds) if bearer == "good" else bearer)
    assert (status, name) == (r.status_code, r.json()["error"]["status"])
    assert status == r.json()["error"]["code"]


def test_a_path_with_no_method_is_googles_html_404(fake: FakeProvider, creds: Any) -> None:
    r = post(fake, f"{V1}/google/models/g", GEN, token(creds))
    assert 404 == r.status_code and r.headers["content-type"].startswith("text/html")
    assert "That\u2019s an error." in r.text


def test_an_expired_token_is_refused(fake: FakeProvider, creds: Any) -> None:
    fake.vertex.token_lifetime_s = 3
    t = token(creds)
    assert 200 == post(fake, f"{V1}/google/models/g:generateContent", GEN, t).status_code
    time.sleep(3.1)
    assert 401 == post(fake, f"{V1}/google/models/g:generateContent", GEN, t).status_code


@pytest.mark.parametrize(("path", "body", "message"), [
    (f"{V1}/google/models/g:countTokens", {"generateContentRequest": GEN}, 'Unknown name "generateContentRequest"'),
    (f"{V1}/google/models/g:generateContent", {**GEN, "model": "models/g"}, 'Unknown name "model"'),
    (f"{V1}/anthropic/models/c:rawPredict", {**MSG, "anthropic_version": "vertex"}, "anthropic_version"),
    (f"{V1}/anthropic/models/c:rawPredict", {"max_tokens": 8, "messages": []}, "anthropic_version"),
], ids=["gemini-api-count-form", "gemini-model-field", "claude-bad-version", "claude-no-version"])
def test_bodies_vertex_refuses(fake: FakeProvider, creds: Any, path: str, body: Any, message: str) -> None:
    r = post(fake, path, body, token(creds))
    error = r.json()["error"]
    assert 400 == r.status_code and message in (error if isinstance(error, str) else error["message"])


def test_a_claude_quota_error_is_googles_shape(fake: FakeProvider, creds: Any) -> None:
    from fakes import ErrorReply

    fake.push(Reply(error=ErrorReply(429, "Quota exceeded")))
    r = post(fake, f"{V1}/anthropic/models/c:rawPredict", MSG, token(creds))
    assert {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}} == r.json()


def _assertion(claims: dict[str, Any], info: dict[str, Any]) -> str:
    from google.auth import crypt, jwt

    signer = crypt.RSASigner.from_service_account_info(info)  # type: ignore[no-untyped-call]
    return str(jwt.encode(signer, claims).decode())  # type: ignore[no-untyped-call]


def _claims(info: dict[str, Any], **kw: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": info["client_email"], "aud": fake_vertex.AUDIENCE, "scope": fake_vertex.SCOPE, "iat": now,
            "exp": now + 3600, **kw}


@pytest.mark.parametrize(("change", "error", "description"), [
    ({"aud": "https://example.com/token"}, "invalid_grant", "short-lived"),
    ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
    ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
    ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope", "scope"),
], ids=["wrong-audience", "too-long", "unknown-account", "wrong-scope"])
def test_the_token_endpoint_checks_the_assertion(fake: FakeProvider, change: dict[str, Any], error: str,
                                                 description: str) -> None:
    info = fake.vertex.new_service_account(fake.base_url + "/token")
    form = {"grant_type": fake_vertex.JWT_GRANT, "assertion": _assertion(_claims(info, **change), info)}
    r = httpx.post(fake.base_url + "/token", data=form)
    assert (400, error) == (r.status_code, r.json()["error"])
    assert description in r.json()["error_description"]


def test_a_forged_signature_is_refused(fake: FakeProvider) -> None:
    info = fake.vertex.new_service_account(fake.base_url + "/token")
    head, claims, sig = _assertion(_claims(info), info).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(info, scope=fake_vertex.SCOPE + " x")).encode()).decode()
    r = httpx.post(fake.base_url + "/token", data={"grant_type": fake_vertex.JWT_GRANT,
                                                   "assertion": f"{head}.{forged.rstrip('=')}.{sig}"})
    assert ("invalid_grant", "Invalid JWT Signature.") == (r.json()["error"], r.json()["error_description"])
    ok = httpx.post(fake.base_url + "/token", data={"grant_type": fake_vertex.JWT_GRANT,
                                                    "assertion": f"{head}.{claims}.{sig}"})
    assert 200 == ok.status_code and ok.json()["access_token"].startswith("ya29.")


def test_python_m_fakes_writes_and_accepts_a_vertex_key_file(tmp_path: Path) -> None:
    """``--vertex-key-file`` (the demo): a new key is written before the fake says it listens, and a token is
    issued for it; a second start keeps a key made for its own token endpoint, else writes one for it."""
    import subprocess
    import sys

    path = tmp_path / "keys" / "sa.json"
    for start in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "fakes", "--port", "0", "--vertex-key-file", str(path)],
                                cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().rsplit(" ", 1)[-1].strip()
            info = json.loads(path.read_text())
            if start == 0:
                first = info
                assert 0o600 == path.stat().st_mode & 0o777
            elif info["token_uri"] == first["token_uri"]:  # the same port again: the same key
                assert first == info
            creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(path), scopes=SCOPES)
            assert token(creds).startswith("ya29.") and info["token_uri"] == f"{base_url}/token"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
