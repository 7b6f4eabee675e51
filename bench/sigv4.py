"""The per-request cost of a SigV4 signature: tokengate's signer (translator/flavours/sigv4.py) against botocore's
``SigV4Auth`` on the same Bedrock request (docs/performance.md, "SigV4"). ``python -m bench.sigv4``.

Both sign ``POST /model/<inference profile>/converse`` with a 2 KiB body (host, x-amz-date, a session token):
ours as the flavour calls it (one call, the signing key kept for the day), botocore's as its SDK does (an
``AWSRequest`` built per request, then ``add_auth``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from translator.flavours.sigv4 import Keys, Signer

HOST = "bedrock-runtime.us-east-1.amazonaws.com"
PATH = "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
BODY = b'{"messages":[{"role":"user","content":[{"text":"' + b"x" * 2000 + b'"}]}]}'
KEYS = Keys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLEtoken")


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """The best of five runs of ``n`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    ours = Signer(KEYS, "us-east-1", "bedrock")
    theirs = SigV4Auth(Credentials(KEYS.access_key_id, KEYS.secret_access_key, KEYS.session_token), "bedrock",
                       "us-east-1")

    def botocore() -> object:
        request = AWSRequest(method="POST", url=f"https://{HOST}{PATH}", data=BODY, headers={"host": HOST})
        theirs.add_auth(request)
        return request.headers["Authorization"]

    n = 5000
    a = per_call_us(lambda: ours.headers("POST", HOST, PATH, BODY), n)
    b = per_call_us(botocore, n)
    print(f"tokengate Signer.headers  {a:7.1f} us/request")
    print(f"botocore SigV4Auth        {b:7.1f} us/request   ({b / a:.1f}x)")


if __name__ == "__main__":
    main()
