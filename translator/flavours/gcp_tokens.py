"""Google Cloud OAuth2 access tokens from a service-account key, kept fresh off the request path.

One daemon thread per service-account key and translator process asks the key's token endpoint (the
file's ``token_uri``) for a token with google-auth, then again before it expires: when half its
lifetime is left, and at most ``margin_s`` (5 minutes) before the end, so a one-hour token is
renewed after 55 minutes. A failed refresh is tried again after 1, 2, 4 … up to 30 seconds while the
token in hand stays good.

A request reads the token in hand and never waits for a refresh: once the last token expired with
every refresh since failing, or the first refresh failed, the attempt is refused with a 503 in the
caller's shape that names the reason (``ServiceUnavailable``). Only the first fetch is waited for: a
starting translator waits for the token endpoint's first answer (a token or an error) at most a few
seconds before it reports itself healthy (``first_attempt``), and an attempt that comes while that
fetch still runs (a slow endpoint, a loaded machine) waits for its end, off the event loop and at
most ``NOT_READY_WAIT_S`` (``NotReady``; translator/extproc/upstream.py), rather than failing.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import structlog

from translator.errors import ServiceUnavailable
from translator.flavours import NotReady

log = structlog.get_logger("tokengate.gcp_tokens")

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MARGIN_S = 300.0  # renew at most this long before expiry (and at half the lifetime when that comes later)
MAX_BACKOFF_S = 30.0


def service_account(path: str) -> Any:
    """google-auth's credentials for a service-account key file (its token endpoint is the file's ``token_uri``)."""
    from google.oauth2 import service_account as sa  # only a Vertex provider pays for the import

    return sa.Credentials.from_service_account_file(path, scopes=[SCOPE])  # type: ignore[no-untyped-call]


def _request() -> Any:
    from google.auth.transport.requests import Request

    return Request()


class AccessTokens:
    """The current access token of one service account; ``start()`` begins the background refreshes."""

    def __init__(self, credentials_file: str, *, margin_s: float = MARGIN_S,
                 max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self.credentials_file = credentials_file
        self.margin_s, self.max_backoff_s = margin_s, max_backoff_s
        self._creds: Any = None
        self._token: tuple[str, float] | None = None  # (token, expiry on the monotonic clock): replaced whole
        self._error: str | None = None  # why the last refresh failed
        self.refreshes = 0  # tokens obtained (tests and logs)
        self._stop = threading.Event()
        self._attempted = threading.Event()  # the first refresh ended, with a token or an error
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AccessTokens({self.credentials_file!r}, refreshes={self.refreshes}, error={self._error!r})"

    @property
    def error(self) -> str | None:
        """Why the last refresh failed (None after a good one)."""
        return self._error

    def start(self) -> AccessTokens:
        """Start the refresh thread (once); the first token is asked for at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gcp-token-refresh", daemon=True)
            self._thread.start()
        return self

    def first_attempt(self, timeout: float) -> bool:
        """Wait (blocking) at most ``timeout`` seconds for the first refresh to end; whether it did."""
        return self._attempted.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def current(self) -> str:
        """The token to send now; ``ServiceUnavailable`` when there is none that is still good."""
        token = self._token
        if token is not None and time.monotonic() < token[1]:
            return token[0]
        why = f"the last refresh failed: {self._error}" if self._error else "the first one is being fetched"
        state = "expired" if token is not None else "not available yet"
        message = f"The Google Cloud access token for this model is {state} ({why})."
        if token is None and not self._attempted.is_set():
            raise NotReady(message, self._attempted.wait)
        raise ServiceUnavailable(message)

    def refresh(self) -> float:
        """Fetch a new token now (blocking: the refresh thread's, and tests'); seconds until the next refresh."""
        if self._creds is None:
            self._creds = service_account(self.credentials_file)
        self._creds.refresh(_request())
        expiry = self._creds.expiry  # naive UTC (google-auth's), from the endpoint's expires_in
        lifetime = (expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds() if expiry else 3600.0
        lifetime = max(0.0, lifetime)
        self._token, self._error = (str(self._creds.token), time.monotonic() + lifetime), None
        self.refreshes += 1
        return max(lifetime / 2, lifetime - self.margin_s)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                wait = self.refresh()
                backoff = 1.0
                log.info("gcp_token_refreshed", file=self.credentials_file, next_in_s=round(wait, 1))
            except Exception as exc:  # google-auth's RefreshError, an unreadable file, the network …
                self._error = f"{type(exc).__name__}: {exc}"
                log.warning("gcp_token_refresh_failed", file=self.credentials_file, error=self._error,
                            retry_in_s=backoff)
                wait, backoff = backoff, min(backoff * 2, self.max_backoff_s)
            self._attempted.set()
            self._stop.wait(wait)
