"""The Azure OpenAI fake checks what Azure checks (path, api-version, api-key), answers with Azure's
extra fields, scripts its filters, and the openai SDK's AzureOpenAI client reads it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from fakes import FakeProvider, Reply
from fakes import azure as fake_azure

CHAT = {"model": "ignored", "messages": [{"role": "user", "content": "hi"}]}
KEY = {"api-key": fake_azure.AZURE_KEY}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as f:
        yield f


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProvider) -> None:
    fake.reset()


@pytest.mark.parametrize(("path", "headers", "status", "code"), [
    ("/openai/deployments/d1/chat/completions?api-version=2024-10-21", {}, 401, "401"),
    ("/openai/deployments/d1/chat/completions?api-version=2024-10-21", {"api-key": "wrong"}, 401, "401"),
    ("/openai/deployments/d1/chat/completions?api-version=2024-10-21",
     {"authorization": f"Bearer {fake_azure.AZURE_KEY}"}, 401, "401"),
    ("/openai/deployments/d1/chat/completions", KEY, 404, "404"),
    ("/openai/deployments/d1/chat/completions?api-version=2099-01-01", KEY, 400, "BadRequest"),
    ("/openai/deployments/chat/completions?api-version=2024-10-21", KEY, 404, "404"),
    ("/openai/v2/chat/completions", KEY, 404, "404"),
], ids=["no-key", "wrong-key", "bearer-instead", "no-api-version", "unknown-api-version", "no-deployment",
        "unknown-api"])
def test_refused_as_azure_refuses(fake: FakeProvider, path: str, headers: dict[str, str], status: int,
                                  code: str) -> None:
    r = httpx.post(fake.base_url + path, json=CHAT, headers=headers, timeout=10)
    assert (status, code) == (r.status_code, r.json()["error"]["code"])


@pytest.mark.parametrize("path", ["/openai/deployments/d1/chat/completions?api-version=2024-10-21",
                                  "/openai/v1/chat/completions"], ids=["deployments", "v1"])
def test_answers_carry_azures_filter_results(fake: FakeProvider, path: str) -> None:
    body = httpx.post(fake.base_url + path, json=CHAT, headers=KEY, timeout=10).json()
    assert "prompt_filter_results" in body and "content_filter_results" in body["choices"][0]


def test_the_sdks_azure_client_reads_a_deployment() -> None:
    with FakeProvider.running() as fake:
        client = openai.AzureOpenAI(azure_endpoint=fake.base_url, api_key=fake_azure.AZURE_KEY,
                                    api_version="2024-10-21", azure_deployment="d1", max_retries=0)
        fake.push(fake_azure.answer_filtered("Here is"))
        r = client.chat.completions.create(model="d1", messages=[{"role": "user", "content": "x"}])
        assert ("content_filter", "Here is") == (r.choices[0].finish_reason, r.choices[0].message.content)
        fake.push(fake_azure.prompt_filtered("hate"))
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="d1", messages=[{"role": "user", "content": "x"}])
        assert "content_filter" == info.value.code
        assert {"hate": {"filtered": True, "severity": "high"}}.items() <= (
            info.value.body["innererror"]["content_filter_result"].items())  # type: ignore[index]
        sent = fake.requests[0]
        assert ("/openai/deployments/d1/chat/completions", "2024-10-21") == (sent.path, sent.query["api-version"])


def test_a_scripted_reply_is_taken_by_the_v1_responses_route(fake: FakeProvider) -> None:
    fake.push(Reply(text="from responses"))
    client = openai.OpenAI(base_url=fake.base_url + "/openai/v1", api_key="unused", max_retries=0,
                           default_headers=KEY)
    assert "from responses" == client.responses.create(model="d1", input="hi").output_text
