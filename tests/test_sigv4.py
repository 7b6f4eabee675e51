"""SigV4 (``translator/flavours/sigv4.py``): AWS's published test suite, and botocore's signer on Bedrock's own
requests (a model id escaped in the path, temporary credentials)."""

from __future__ import annotations

import calendar
import time

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fakes.bedrock import botocore_sign
from translator.flavours.sigv4 import Keys, Signer, canonical_uri

# The suite's keys, date, region and service (aws4_testsuite; botocore's tests/unit/auth carry it).
SUITE = Keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_NOW = calendar.timegm(time.strptime("20150830T123600Z", "%Y%m%dT%H%M%SZ"))


@pytest.mark.parametrize(("method", "path", "signature"), [
    ("GET", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("POST", "/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("GET", "/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
], ids=["get-vanilla", "post-vanilla", "get-vanilla-query-order-key-case"])
def test_the_published_test_suite_signs_alike(method: str, path: str, signature: str) -> None:
    """The signature of AWS's SigV4 test suite vectors, byte for byte."""
    got = Signer(SUITE, "us-east-1", "service").headers(method, "example.amazonaws.com", path, b"", now=SUITE_NOW)
    assert {"x-amz-date": "20150830T123600Z",
            "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                             f"SignedHeaders=host;x-amz-date, Signature={signature}"} == got


def botocore_authorization(keys: Keys, host: str, path: str, body: bytes, stamp: str) -> str:
    """botocore's own signature of the same request (what AWS's SDKs send)."""
    request = AWSRequest(method="POST", url=f"https://{host}{path}", data=body,
                         headers={"host": host, "x-amz-date": stamp})
    if keys.session_token:
        request.headers["x-amz-security-token"] = keys.session_token
    creds = Credentials(keys.access_key_id, keys.secret_access_key, keys.session_token)
    return botocore_sign(request, creds, "eu-west-3", stamp)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLE//token+with/slashes="], ids=["static", "session"])
@pytest.mark.parametrize("model", [
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
], ids=["base-model", "inference-profile", "arn"])
def test_a_bedrock_request_is_signed_as_botocore_signs_it(model: str, token: str | None) -> None:
    """The escaped model id (signed escaped once more), the body's hash and a session token, as botocore has them."""
    from urllib.parse import quote

    keys = Keys("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token)
    host, path, body = "bedrock-runtime.eu-west-3.amazonaws.com", f"/model/{quote(model, safe='')}/converse", b'{"a":1}'
    ours = Signer(keys, "eu-west-3", "bedrock").headers("POST", host, path, body)
    assert ours.get("x-amz-security-token") == token
    assert botocore_authorization(keys, host, path, body, ours["x-amz-date"]) == ours["authorization"]


def test_the_signing_key_is_derived_once_a_day() -> None:
    signer = Signer(SUITE, "us-east-1", "bedrock")
    signer.headers("POST", "h", "/", b"", now=SUITE_NOW)
    key = signer._key
    signer.headers("POST", "h", "/", b"x", now=SUITE_NOW + 3600)
    assert key is signer._key
    signer.headers("POST", "h", "/", b"x", now=SUITE_NOW + 86400)
    assert key != signer._key


@pytest.mark.parametrize(("path", "canonical"), [
    ("/", "/"), ("", "/"), ("/a/./b/../c", "/a/c"), ("/model/x%3A0/converse", "/model/x%253A0/converse"),
    ("/a b", "/a%20b"),
])
def test_the_canonical_uri_is_the_path_normalised_and_escaped_again(path: str, canonical: str) -> None:
    assert canonical == canonical_uri(path)
