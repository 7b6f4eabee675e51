"""The keys page: create (shown once), list with prefix, last use and status, revoke."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

from starlette.responses import Response

from core import keys, store
from portal import formatting, reports
from portal.web import Ctx, PageError, page

NAME_RE = re.compile(r"^[\w .@:/-]{1,64}$")
MAX_LIMIT = 1_000_000_000


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    name: str
    prefix: str
    created: float
    expires_at: int
    last_used: float
    status: str  # active | expired | revoked
    models: tuple[str, ...]
    rpm: int
    tpm: int


def _status(rec: dict[str, str], now: float) -> str:
    if rec.get("revoked") == "1":
        return "revoked"
    exp = int(rec.get("expires_at") or 0)
    return "expired" if exp and now >= exp else "active"


async def key_rows(ctx: Ctx) -> list[KeyRow]:
    redis, now = ctx.portal.redis, time.time()
    recent = await reports.recent_requests(redis, ctx.account, limit=200)
    used = await reports.last_used(redis, ctx.account, recent)
    rows = [KeyRow(r["id"], r.get("name", ""), r.get("prefix", ""), float(r.get("created") or 0),
                   int(r.get("expires_at") or 0), used.get(r["id"], 0.0), _status(r, now),
                   tuple(m for m in r.get("models", "").split(",") if m), int(r.get("rpm") or 0),
                   int(r.get("tpm") or 0))
            for r in await keys.list_keys(redis, ctx.account) if r.get("id")]
    return sorted(rows, key=lambda k: (k.status != "active", -k.created))


def model_names(ctx: Ctx) -> list[str]:
    return [m.name for m in ctx.portal.gateway.models]


async def _page(ctx: Ctx, status: int = 200, error: str = "") -> Response:
    return await ctx.render("keys.html", status=status, error=error, title="API keys", nav="keys",
                            keys=await key_rows(ctx), models=model_names(ctx),
                            today=formatting.local_today(ctx.tz).isoformat())


@page("user")
async def keys_page(ctx: Ctx) -> Response:
    return await _page(ctx)


def _limit(ctx: Ctx, name: str, label: str) -> int:
    raw = ctx.field(name)
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > MAX_LIMIT:
        raise ValueError(f"{label} is a whole number (empty or 0: no limit).")
    return int(raw)


@page("user")
async def create(ctx: Ctx) -> Response:
    try:
        name = ctx.field("name") or "default"
        if not NAME_RE.match(name):
            raise ValueError("Names are up to 64 letters, digits, spaces and . _ @ : / -")
        expires_at = 0
        if raw := ctx.field("expires"):
            try:
                day = dt.date.fromisoformat(raw)
            except ValueError:
                raise ValueError("Give the expiry as a date.") from None
            expires_at = formatting.end_of_local_day(day, ctx.tz)
            if expires_at <= time.time():
                raise ValueError("The expiry date has passed.")
        known = set(model_names(ctx))
        chosen = [str(m) for m in ctx.form.getlist("models")]
        if unknown := [m for m in chosen if m not in known]:
            raise ValueError(f"Unknown model: {unknown[0]}")
        rpm, tpm = _limit(ctx, "rpm", "Requests per minute"), _limit(ctx, "tpm", "Tokens per minute")
    except ValueError as exc:
        return await _page(ctx, 400, str(exc))
    api_key = await keys.create_key(ctx.portal.redis, ctx.account, name=name, expires_at=expires_at,
                                    models=chosen, rpm=rpm, tpm=tpm)
    return await ctx.render("key_created.html", status=201, title="Key created", nav="keys", name=name,
                            api_key=api_key, key_id=store.key_id(store.digest(api_key)))


@page("user")
async def revoke(ctx: Ctx) -> Response:
    key_id = str(ctx.request.path_params["key_id"])
    if not re.fullmatch(r"[0-9a-f]{16}", key_id) or not await keys.revoke_key(ctx.portal.redis, ctx.account,
                                                                               key_id):
        raise PageError(404, "No such key.")
    await ctx.flash(f"Key {key_id} is revoked; requests with it are refused from now on.")
    return ctx.redirect("/keys")
