"""The Redis key layout and API keys.

Every key that belongs to one account carries the account id as a hash tag,
``tg:{<account>}:…``, so a script touching one account stays on one Redis
Cluster slot. The API key itself names its account, so the translator finds
the right slot without a lookup:

    sk-tg-<account>-<secret>          the key, shown once, never stored
    tg:{<account>}:key:<sha256>       hash: id, prefix, name, created, expires_at,
                                      revoked, models (comma list), rpm, tpm
    tg:{<account>}:keys               set of the account's key hashes
    tg:{<account>}:account            hash: created, balance, held (nano-USD)
    tg:{<account>}:holds              hash: hold id -> nano-USD held for a running request
    tg:{<account>}:hold_exp           zset: hold id -> unix time the reaper may release it
    tg:{<account>}:hold_info          hash: a request's hold id -> "<charge if reaped> <model> <key id>"
    tg:{<account>}:reaped:<event id>  what the reaper charged for a request that never reported
    tg:{<account>}:done:<ref>         marker: event or top-up <ref> already applied
    tg:{<account>}:ledger             stream: topup | charge | adjust | reaped, amount, balance after
    tg:{<account>}:usage:<YYYY-MM-DD> hash: "<model>|<metric>" and "<key id>|<model>|<metric>"
                                      -> requests, input, cache_read, cache_write, output,
                                      reasoning, cost, failed, reaped (UTC days)
    tg:{<account>}:requests           stream: the last ~1000 settled metering events (field "pb": the
                                      serialized event, core/event.py; "event": JSON, written before)
    tg:{<account>}:key_last_used      hash: key id -> unix time of its latest settled request
    tg:{<account>}:rpm:<key id>:<min> requests this minute;  ...:tpm:<key id>:<min> tokens
    tg:accounts                       set of account ids (admin listing, reaper)
    tg:metering                       stream of metering events (one per request): shard 0;
    tg:metering:{s<i>}                shard i of N (``metering_shards`` in the Redis URL), chosen by
                                      a hash of the account; each has the consumer group "settlers"
    tg:metering:shards                set: every shard count a translator wrote with (the settler
                                      reads up to the largest, so lowering N strands nothing)
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY_PREFIX = "sk-tg-"
ACCOUNT_RE = re.compile(r"^[a-z0-9]{1,32}$")
_SECRET_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # noqa: S105 - base62
METERING_STREAM = "tg:metering"
METERING_SHARDS = "tg:metering:shards"
ACCOUNTS = "tg:accounts"


def metering_stream(shard: int) -> str:
    """Shard 0 is the stream of the releases before sharding; the others carry their own hash tag,
    so on a Redis Cluster they land on slots of their own (and mostly on different masters)."""
    return METERING_STREAM if shard == 0 else f"{METERING_STREAM}:{{s{shard}}}"


def metering_shard(account: str, shards: int) -> int:
    """The shard an account's events go to: fixed for a fixed shard count."""
    return zlib.crc32(account.encode()) % shards if shards > 1 else 0


def account_key(account: str) -> str:
    return f"tg:{{{account}}}:account"


def key_record(account: str, digest: str) -> str:
    return f"tg:{{{account}}}:key:{digest}"


def account_keys(account: str) -> str:
    return f"tg:{{{account}}}:keys"


def holds(account: str) -> str:
    return f"tg:{{{account}}}:holds"


def hold_expiries(account: str) -> str:
    return f"tg:{{{account}}}:hold_exp"


def hold_info(account: str) -> str:
    return f"tg:{{{account}}}:hold_info"


def reaped(account: str, event_id: str) -> str:
    return f"tg:{{{account}}}:reaped:{event_id}"


def done(account: str, ref: str) -> str:
    return f"tg:{{{account}}}:done:{ref}"


def ledger(account: str) -> str:
    return f"tg:{{{account}}}:ledger"


def usage_day(account: str, day: str) -> str:
    return f"tg:{{{account}}}:usage:{day}"


def recent_requests(account: str) -> str:
    """The account's last ~1000 settled metering events (the portal's recent requests)."""
    return f"tg:{{{account}}}:requests"


def key_last_used(account: str) -> str:
    """Key id -> unix time of its latest settled request."""
    return f"tg:{{{account}}}:key_last_used"


def rate_counter(account: str, kind: str, key_id: str, minute: int) -> str:
    return f"tg:{{{account}}}:{kind}:{key_id}:{minute}"


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id(sha256_hex: str) -> str:
    """The key's public id: the first 16 hex digits of its SHA-256."""
    return sha256_hex[:16]


def account_of(api_key: str) -> str | None:
    """The account a well-formed key names, or None for anything else."""
    if not api_key.startswith(KEY_PREFIX):
        return None
    account, sep, secret = api_key[len(KEY_PREFIX):].partition("-")
    if not sep or not ACCOUNT_RE.match(account) or len(secret) < 32:
        return None
    return account


def new_key(account: str) -> str:
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))  # ~238 bits
    return f"{KEY_PREFIX}{account}-{secret}"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the translator knows about a caller once its key checked out."""

    account: str
    key_id: str
    name: str = ""
    expires_at: int = 0  # unix seconds; 0 = never
    revoked: bool = False
    models: frozenset[str] = field(default_factory=frozenset)  # empty = every model

    @classmethod
    def from_hash(cls, account: str, h: Mapping[Any, Any]) -> KeyInfo:
        """From the key's Redis hash, as redis-py returns it (bytes keys and values)."""
        def s(name: str) -> str:
            return text(h.get(name.encode(), b""))

        return cls(
            account=account,
            key_id=s("id"),
            name=s("name"),
            expires_at=int(s("expires_at") or 0),
            revoked=s("revoked") == "1",
            models=frozenset(m for m in s("models").split(",") if m),
        )

    def usable_at(self, now: float) -> bool:
        return not self.revoked and (self.expires_at == 0 or now < self.expires_at)


def text(v: object) -> str:
    """A Redis reply as text, whichever decoding the client was set up with."""
    return v.decode() if isinstance(v, bytes) else str(v)


def key_fields(
    api_key: str, *, name: str, expires_at: int = 0, models: list[str] | None = None,
    rpm: int = 0, tpm: int = 0,
) -> dict[str, str]:
    d = digest(api_key)
    return {
        "id": key_id(d),
        "prefix": api_key[: len(KEY_PREFIX) + 12],
        "name": name,
        "created": str(int(time.time())),
        "expires_at": str(expires_at),
        "revoked": "0",
        "models": ",".join(models or []),
        "rpm": str(rpm),
        "tpm": str(tpm),
    }
