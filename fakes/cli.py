"""``python -m fakes``: the fake providers as a process (``make run``, benchmarks).

Prints ``fakes: listening on <base url>`` once it accepts connections (with
``--port 0`` that line tells the chosen port), serves until SIGTERM or SIGINT,
then closes every connection and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fakes.server import DEFAULT_MODELS, FakeProvider


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
        return runner.run(serve(args.host, args.port, models=args.models or DEFAULT_MODELS,
                                vertex_keys=args.vertex_keys or ()))


async def serve(host: str, port: int, *, models: Sequence[str] = DEFAULT_MODELS,
                vertex_keys: Sequence[str] = ()) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    fake = FakeProvider(models=models)
    await fake.start(host, port)
    for path in vertex_keys:  # before "listening": whoever waits for that line finds the key files written
        fake.vertex.key_file(Path(path), f"{fake.base_url}/token")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"fakes: listening on {fake.base_url}", flush=True)
    try:
        await stopping.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await fake.stop()
    return 0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop  # optional speed-up, absent on Windows

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fakes", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--model", dest="models", action="append", help="model listed by /v1/models (repeatable)")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="uvloop" if sys.platform != "win32" else "asyncio",
    )
    parser.add_argument("--vertex-key-file", dest="vertex_keys", action="append", metavar="PATH",
                        help="accept the Vertex AI service account whose JSON key is here, writing a new one "
                             "(token_uri: this fake) when there is none (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser
