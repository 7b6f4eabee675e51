"""A DNS resolver on loopback for the simulated pod: named hosts -> 127.0.0.1.

In the cluster Envoy resolves ``api.openai.com`` through the pod's resolver;
here the simulation points Envoy at this one, so the rendered clusters keep
their host names (Host header, SNI and certificate checks all follow from
them) while the connections land on loopback. A query for any other name is
refused (NXDOMAIN), never forwarded.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

_A, _AAAA = 1, 28


def _qname(packet: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while (length := packet[offset]) != 0:
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii").lower())
        offset += 1 + length
    return ".".join(labels), offset + 1


def answer(query: bytes, names: set[str]) -> bytes:
    """The reply to one query: an A record 127.0.0.1 for a known name, no data for AAAA, else NXDOMAIN."""
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    name, end = _qname(query, 12)
    qtype, _qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    known = name.rstrip(".") in names
    rcode = 0 if known else 3
    answers = b""
    if known and qtype == _A:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", _A, 1, 5, 4) + socket.inet_aton("127.0.0.1")
    flags = 0x8180 | rcode  # response, recursion desired and available
    header = struct.pack("!HHHHHH", ident, flags, min(qdcount, 1), 1 if answers else 0, 0, 0)
    return header + question + answers


@contextlib.contextmanager
def resolver(names: set[str]) -> Iterator[int]:
    """Answer DNS over UDP on a loopback port (yielded) for the ``with`` block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):  # a malformed query gets no answer
                sock.sendto(answer(query, names), peer)

    thread = threading.Thread(target=serve, name="dns", daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
