"""Fixtures: a fake provider on its own thread, and each official SDK pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from fakes import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as provider:
        yield provider


@pytest.fixture
def openai_client(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url + "/v1", api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(fake: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def gemini_client(fake: FakeProvider) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=fake.base_url)
    with genai.Client(api_key="x", http_options=options) as client:
        yield client
