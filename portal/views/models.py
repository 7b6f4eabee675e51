"""The models page: what the account may call, at what price, and how to call it from each SDK."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from portal import formatting
from portal.web import Ctx, page

KEY_ENV = "TOKENGATE_API_KEY"


@dataclass(frozen=True, slots=True)
class ModelRow:
    name: str
    aliases: tuple[str, ...]
    input: str
    cache_read: str
    cache_write: str
    output: str
    tiers: tuple[str, ...]  # "from N prompt tokens: $in / $out"
    free: bool


def model_rows(ctx: Ctx) -> list[ModelRow]:
    prices = ctx.portal.gateway.prices()
    out = []
    for m in ctx.portal.gateway.models:
        p = prices[m.name]
        r = p.rates
        tiers = tuple(f"from {start:,} prompt tokens: {formatting.per_mtok(t.input)} in, "
                      f"{formatting.per_mtok(t.output)} out" for start, t in p.tiers)
        out.append(ModelRow(m.name, tuple(m.aliases), formatting.per_mtok(r.input), formatting.per_mtok(r.cache_read),
                            formatting.per_mtok(r.cache_write), formatting.per_mtok(r.output), tiers, m.free))
    return out


def snippets(base_url: str, model: str) -> list[tuple[str, str, str]]:
    """(id, title, code) for each SDK; the key comes from the environment, never the page."""
    base = base_url.rstrip("/")
    return [
        ("openai", "OpenAI SDK (Python) — base URL ends in /v1", f'''import os
from openai import OpenAI

client = OpenAI(base_url="{base}/v1", api_key=os.environ["{KEY_ENV}"])
reply = client.chat.completions.create(
    model="{model}", messages=[{{"role": "user", "content": "Hello!"}}])
print(reply.choices[0].message.content)'''),
        ("anthropic", "Anthropic SDK (Python) — base URL without /v1", f'''import os
import anthropic

client = anthropic.Anthropic(base_url="{base}", api_key=os.environ["{KEY_ENV}"])
reply = client.messages.create(
    model="{model}", max_tokens=1024, messages=[{{"role": "user", "content": "Hello!"}}])
print(reply.content[0].text)'''),
        ("gemini", "Google Gen AI SDK (Python)", f'''import os
from google import genai
from google.genai import types

client = genai.Client(api_key=os.environ["{KEY_ENV}"],
                      http_options=types.HttpOptions(base_url="{base}"))
reply = client.models.generate_content(model="{model}", contents="Hello!")
print(reply.text)'''),
        ("curl", "curl (OpenAI protocol)", f'''curl {base}/v1/chat/completions \\
  -H "Authorization: Bearer ${KEY_ENV}" -H "content-type: application/json" \\
  -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}\''''),
    ]


@page("user")
async def models(ctx: Ctx) -> Response:
    rows = model_rows(ctx)
    chosen = ctx.request.query_params.get("model", "")
    if chosen not in {r.name for r in rows}:
        chosen = rows[0].name
    return await ctx.render("models.html", title="Models", nav="models", rows=rows, chosen=chosen,
                            snippets=snippets(ctx.portal.settings.base_url, chosen), key_env=KEY_ENV,
                            base_url=ctx.portal.settings.base_url.rstrip("/"))
