"""``python -m fakes`` as a process: serving, the control API, a clean SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from fakes import ErrorReply, RemoteFake, Reply

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakes", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "fakes: listening on http://127.0.0.1:<port>"
    try:
        yield proc, line.rsplit(" ", 1)[-1].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_process_is_scripted_through_the_control_api(
    process: tuple[subprocess.Popen[str], str],
) -> None:
    """A test in another process pushes replies, reads recorded requests and resets."""
    proc, base_url = process
    with (
        RemoteFake(base_url) as remote,
        openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0) as client,
    ):
        remote.push(Reply(text="scripted", model="demo-echo"), Reply(error=ErrorReply(429, "later")))
        messages = [{"role": "user", "content": "hello"}]
        first = client.chat.completions.create(model="demo-echo", messages=messages)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="demo-echo", messages=messages)  # type: ignore[arg-type]
        recorded = remote.requests
        remote.reset()
        after_reset = remote.requests
        echo = client.chat.completions.create(model="demo-echo", messages=messages)  # type: ignore[arg-type]
    actual = (
        first.choices[0].message.content,
        [r.json()["model"] for r in recorded],
        after_reset,
        echo.choices[0].message.content,
    )
    assert ("scripted", ["demo-echo", "demo-echo"], [], "echo: hello") == actual
    proc.send_signal(signal.SIGTERM)
    assert 0 == proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_fake/push", b'{"txt": "typo"}', 400),
        ("POST", "/_fake/push", b"not json", 400),
        ("POST", "/_fake/push", b"[1, 2]", 400),
        ("GET", "/_fake/nothing", None, 404),
    ],
    ids=["unknown-field", "bad-json", "not-an-object", "unknown-endpoint"],
)
def test_control_api_rejects_bad_calls(
    process: tuple[subprocess.Popen[str], str],
    method: str,
    path: str,
    body: bytes | None,
    status: int,
) -> None:
    """Bad control calls are refused with a JSON error; control calls are never recorded."""
    _, base_url = process
    response = httpx.request(method, base_url + path, content=body)
    recorded = httpx.get(base_url + "/_fake/requests").json()
    assert (status, True, []) == (response.status_code, "error" in response.json(), recorded)
