"""The admin HTTP JSON API: accounts, top-ups, keys, balances, ledgers, usage.

For the portal and for operators' scripts. Every call needs
``Authorization: Bearer <admin token>`` (``TOKENGATE_ADMIN_TOKEN``); it binds to
127.0.0.1 by default. Amounts are integer nano-USD in and out, with a dollar
string beside each for people.

    GET    /admin/accounts                          list with balances
    POST   /admin/accounts                          {"account"}
    GET    /admin/accounts/{a}                      balance, held, available
    POST   /admin/accounts/{a}/credits              {"nano_usd" | "usd", "kind": topup|adjust, "ref", "reason"}
    GET    /admin/accounts/{a}/ledger?limit=50
    GET    /admin/accounts/{a}/usage?from=&to=&key_id=&format=csv
    GET    /admin/accounts/{a}/keys
    POST   /admin/accounts/{a}/keys                 {"name", "expires_at", "models", "rpm", "tpm"} -> key, once
    DELETE /admin/accounts/{a}/keys/{key_id}
"""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import keys, redisconn, store
from core.billing.ops import METRICS, Billing
from core.money import format_usd, parse_usd

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _money(nano: int) -> dict[str, Any]:
    return {"nano_usd": nano, "usd": format_usd(nano)}


def _account(request: Request) -> str:
    a = str(request.path_params["account"])
    if not store.ACCOUNT_RE.match(a):
        raise ApiError(400, "account ids are 1-32 lowercase letters and digits")
    return a


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def build(redis: aioredis.Redis, admin_token: str) -> Starlette:
    billing = Billing(redis)
    if not admin_token:
        raise ValueError("an admin token is required (TOKENGATE_ADMIN_TOKEN)")

    def guarded(fn: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), admin_token.encode()):
                return JSONResponse({"error": "admin token required"}, status_code=401)
            try:
                return await fn(request)
            except ApiError as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except redisconn.NotReplicated as exc:  # a credit a failover could still lose
                return JSONResponse({"error": f"not confirmed by a Redis replica in time ({exc}); it may have "
                                              "been applied: repeat it with the same ref"}, status_code=503)
            except redisconn.ERRORS as exc:
                return JSONResponse({"error": f"Redis unavailable ({exc})"}, status_code=503)
        return handler

    async def list_accounts(request: Request) -> Response:
        out = []
        for a in sorted(store.text(x) for x in await redis.smembers(store.ACCOUNTS)):
            bal, held = await billing.balance(a)
            out.append({"account": a, "balance": _money(bal), "held": _money(held)})
        return JSONResponse({"accounts": out})

    async def create_account(request: Request) -> Response:
        account = str((await _json(request)).get("account", ""))
        if not store.ACCOUNT_RE.match(account):
            raise ApiError(400, "account ids are 1-32 lowercase letters and digits")
        await billing.credit(account, 0, kind="open", ref="open", reason="account created")
        return JSONResponse({"account": account}, status_code=201)

    async def show(request: Request) -> Response:
        a = _account(request)
        if not await redis.sismember(store.ACCOUNTS, a):
            raise ApiError(404, f"no account {a}")
        bal, held = await billing.balance(a)
        return JSONResponse({"account": a, "balance": _money(bal), "held": _money(held),
                             "available": _money(bal - held)})

    async def credit(request: Request) -> Response:
        a, body = _account(request), await _json(request)
        nano = int(body["nano_usd"]) if "nano_usd" in body else parse_usd(str(body.get("usd", "")))
        kind = body.get("kind", "topup")
        if kind not in ("topup", "adjust"):
            raise ApiError(400, "kind is topup or adjust")
        if kind == "topup" and nano <= 0:
            raise ApiError(400, "a top-up must be positive")
        if kind == "adjust" and not body.get("reason"):
            raise ApiError(400, "an adjustment needs a reason")
        ref = str(body.get("ref") or uuid.uuid4().hex)
        new = await billing.credit(a, nano, kind=kind, ref=ref, reason=str(body.get("reason", "")))
        if new is None:
            return JSONResponse({"duplicate": True, "ref": ref}, status_code=200)
        return JSONResponse({"ref": ref, "balance": _money(new)}, status_code=201)

    async def ledger(request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "50")), 1000)
        rows = await billing.ledger(_account(request), limit)
        return JSONResponse({"entries": [{**r, "amount": int(r["amount"]), "balance": int(r["balance"])}
                                         for r in rows]})

    async def usage(request: Request) -> Response:
        q = request.query_params
        today = dt.datetime.now(dt.UTC).date()
        end = dt.date.fromisoformat(q["to"]) if q.get("to") else today
        start = dt.date.fromisoformat(q["from"]) if q.get("from") else end - dt.timedelta(days=30)
        if (end - start).days > 400:
            raise ApiError(400, "at most 400 days at a time")
        rows = await billing.usage(_account(request), start, end, key_id=q.get("key_id") or None)
        if q.get("format") == "csv":
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["date", "model", *METRICS])
            for r in rows:
                w.writerow([r["date"], r["model"], *(r[m] for m in METRICS)])
            return Response(buf.getvalue(), media_type="text/csv")
        return JSONResponse({"from": start.isoformat(), "to": end.isoformat(), "rows": rows})

    async def list_keys(request: Request) -> Response:
        return JSONResponse({"keys": await keys.list_keys(redis, _account(request))})

    async def create_key(request: Request) -> Response:
        a, body = _account(request), await _json(request)
        key = await keys.create_key(redis, a, name=str(body.get("name", "default")),
                                    expires_at=int(body.get("expires_at", 0)),
                                    models=[str(m) for m in body.get("models", [])],
                                    rpm=int(body.get("rpm", 0)), tpm=int(body.get("tpm", 0)))
        return JSONResponse({"key": key, "id": store.key_id(store.digest(key)),
                             "note": "shown once; only its SHA-256 is kept"}, status_code=201)

    async def revoke_key(request: Request) -> Response:
        if not await keys.revoke_key(redis, _account(request), str(request.path_params["key_id"])):
            raise ApiError(404, "no such key")
        return Response(status_code=204)

    base = "/admin/accounts"
    return Starlette(routes=[
        Route(base, guarded(list_accounts), methods=["GET"]),
        Route(base, guarded(create_account), methods=["POST"]),
        Route(base + "/{account}", guarded(show), methods=["GET"]),
        Route(base + "/{account}/credits", guarded(credit), methods=["POST"]),
        Route(base + "/{account}/ledger", guarded(ledger), methods=["GET"]),
        Route(base + "/{account}/usage", guarded(usage), methods=["GET"]),
        Route(base + "/{account}/keys", guarded(list_keys), methods=["GET"]),
        Route(base + "/{account}/keys", guarded(create_key), methods=["POST"]),
        Route(base + "/{account}/keys/{key_id}", guarded(revoke_key), methods=["DELETE"]),
    ])


def app_from_env() -> Starlette:
    """The app ``uvicorn`` serves (``tokengate admin-api``)."""
    return build(redisconn.connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0")),
                 os.environ.get("TOKENGATE_ADMIN_TOKEN", ""))
