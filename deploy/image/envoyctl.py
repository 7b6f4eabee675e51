"""Envoy's admin API for the gateway pod: the liveness probe and the preStop drain.

    python -I /opt/tokengate/envoyctl.py --config /etc/tokengate/envoy/envoy.yaml alive
    python -I /opt/tokengate/envoyctl.py --config /etc/tokengate/envoy/envoy.yaml drain

The admin address is read from the Envoy config: admin listens on 127.0.0.1
only, so it is reachable from inside the pod and nowhere else (the kubelet's
httpGet probes cannot reach it, hence an exec probe).

``alive``: admin answers ``/server_info`` (Envoy's main thread is not stuck).
Whether the translators are healthy is the readiness probe's business
(``/ready``), never liveness: restarting Envoy would not heal a translator.

``drain`` is the Envoy container's preStop hook; the kubelet sends Envoy
SIGTERM only when it returns, and the translator sidecar only after Envoy has
exited:

1. ``POST /healthcheck/fail``: ``/ready`` answers 503 from now on.
2. ``POST /drain_listeners?graceful``: for ``--drain-time`` seconds (Envoy's
   ``--drain-time-s``; the same ``TOKENGATE_DRAIN_TIME_S`` feeds both) Envoy
   still accepts connections, because load balancers and kube-proxy take a
   while to forget the pod, but tells every client to go away
   (``Connection: close``, HTTP/2 GOAWAY); then it closes its listeners.
3. Wait until no downstream request is active (long streams run to their
   end) or until ``--drain-time`` + ``--max-stream`` seconds have passed.

It always waits the whole drain time, and exits 0 even when streams were
still running at the deadline (it says so in the log): termination goes on
either way. Progress goes to ``--log`` (the manifests pass ``/proc/1/fd/1``,
Envoy's stdout, so it shows in ``kubectl logs``; a hook's own output is not
kept anywhere).

Standard library plus PyYAML (in the image), so that it starts fast enough
to be an exec probe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import TextIO

import yaml

POLL_S = 1.0
REPORT_EVERY_S = 10.0


def admin_url(config_path: str) -> str:
    """``http://127.0.0.1:PORT`` from the ``admin`` section of an Envoy bootstrap."""
    with open(config_path) as f:
        doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    sock = doc["admin"]["address"]["socket_address"]
    return f"http://{sock['address']}:{int(sock['port_value'])}"


def call(url: str, method: str = "GET", timeout: float = 3.0) -> str:
    req = urllib.request.Request(url, method=method)  # noqa: S310 - loopback URL from our own config
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return str(resp.read().decode())


def active_requests(admin: str) -> int:
    """Downstream requests in flight on every listener but admin's own (which counts this call)."""
    text = call(admin + "/stats?filter=downstream_rq_active$")
    total = 0
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith("http.") and not name.startswith("http.admin.") and value.strip().isdigit():
            total += int(value)
    return total


def alive(admin: str) -> int:
    try:
        state = json.loads(call(admin + "/server_info"))["state"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"envoy admin does not answer: {exc}", file=sys.stderr)
        return 1
    print(f"envoy {state}")
    return 0


def drain(admin: str, drain_time: float, max_stream: float, log: TextIO) -> int:
    def say(msg: str) -> None:
        log.write(f"envoyctl drain: {msg}\n")
        log.flush()

    start = time.monotonic()
    deadline = start + drain_time + max_stream
    try:
        call(admin + "/healthcheck/fail", "POST")
        call(admin + "/drain_listeners?graceful", "POST")
    except OSError as exc:
        say(f"envoy admin does not answer ({exc}); nothing to drain")
        return 1
    say(f"not ready; listeners close in {drain_time:g}s; waiting up to {drain_time + max_stream:g}s "
        "for active requests")
    last_report = start
    active = -1
    while True:
        now = time.monotonic()
        try:
            active = active_requests(admin)
        except OSError as exc:
            say(f"envoy admin stopped answering ({exc})")
            return 1
        if now - start >= drain_time and active == 0:
            say(f"drained after {now - start:.1f}s")
            return 0
        if now >= deadline:
            say(f"{active} requests still active after {now - start:.1f}s: Envoy stops now and cuts them")
            return 0
        if now - last_report >= REPORT_EVERY_S:
            say(f"{active} requests active after {now - start:.0f}s")
            last_report = now
        time.sleep(POLL_S)


def _open_log(path: str | None) -> TextIO:
    if path:
        try:
            return open(path, "a")  # noqa: SIM115 - lives as long as the process
        except OSError:
            pass
    return sys.stderr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="envoyctl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the Envoy bootstrap (its admin address is used)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("alive", help="exit 0 when Envoy's admin answers (liveness probe)")
    d = sub.add_parser("drain", help="fail health checks, drain listeners, wait for streams (preStop)")
    d.add_argument("--drain-time", type=float, default=float(os.environ.get("TOKENGATE_DRAIN_TIME_S", "15")),
                   help="Envoy's --drain-time-s (default: $TOKENGATE_DRAIN_TIME_S, else 15)")
    d.add_argument("--max-stream", type=float, default=float(os.environ.get("TOKENGATE_MAX_STREAM_S", "600")),
                   help="longest stream waited for after the drain time (default: $TOKENGATE_MAX_STREAM_S, else 600)")
    d.add_argument("--log", help="append progress here (default: stderr)")
    args = p.parse_args(argv)
    admin = admin_url(args.config)
    if args.cmd == "alive":
        return alive(admin)
    return drain(admin, args.drain_time, args.max_stream, _open_log(args.log))


if __name__ == "__main__":
    sys.exit(main())
