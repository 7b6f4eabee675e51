"""One benchmark session: start what a scenario needs, measure, stop it, move on.

Order: the fast Envoy upstream and the SSE upstream (whole session) -> A -> the
passthrough Envoy for B (stopped after) -> the tokengate stack for C, D, E-C,
the profile and the soak (stopped after) -> LiteLLM for F (stopped after). Every
process is started through a ``Supervisor`` (own session, dies with us) and
stopped in ``finally``; every load loop is bounded by a duration and a count.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import gateway, litellm, passthrough, procs, profile, soak, stream_client, upstream, wrk
from bench.report import upstream_units
from bench.scenarios import Plan, measured, run_fixed, run_stream, summary_json
from bench.stats import Summary
from bench.wrk import Target
from core import store
from core.config import load, parse
from tokengate.devstack import grpc_serving
from tokengate.procs import Supervisor, free_port, port_open
from tokengate.render import render, translator_addresses

ROOT = Path(__file__).resolve().parent.parent
ALL = ("A", "B", "N", "C", "D", "E", "L", "F")


@dataclass
class Options:
    plan: Plan = field(default_factory=Plan)
    scenarios: tuple[str, ...] = ALL
    workers: int = 2
    envoy_workers: int = 0  # 0: Envoy's default (one per core)
    upstream_workers: int = 1
    log_level: str = "warning"
    stream_chunks: int = 200
    stream_gap_ms: float = 5.0
    profile: bool = False
    profile_seconds: float = 15.0
    soak_s: float = 0.0
    soak_connections: int = 4
    rounds: int = 0  # interleaved c=16 rounds of N, C and D with both stacks up: ratios robust to noise
    round_s: float = 4.0
    round_streams: int = 2  # streams of each side per round (E): TTFT and chunk latency taking turns
    litellm_spec: str = litellm.SPEC
    results_dir: Path = ROOT / "bench" / "results"
    stem: str = "bench"


def _chat(url: str, model: str, headers: dict[str, str]) -> Target:
    return Target(f"{url}/v1/chat/completions", upstream.openai_request(model), headers)


def _floor_auth() -> dict[str, str]:
    """The floor's requests carry a key as tokengate's do (same shape and length; the no-op server never reads
    it), so Envoy and the ext_proc messages handle the same request bytes on both sides of N/C."""
    return {"Authorization": f"Bearer {store.new_key(gateway.ACCOUNT)}"}


def _agent(url: str, model: str, headers: dict[str, str]) -> Target:
    """Scenario L: a coding agent's ~200 KiB turn (``upstream.agent_request``) instead of a 100-byte question."""
    return Target(f"{url}/v1/chat/completions", upstream.agent_request(model), headers)


class Session:
    def __init__(self, opts: Options, workdir: Path, log: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.plan = opts.plan
        self.workdir = workdir
        self.log = log
        self.sup = Supervisor(workdir / "logs")
        self.fixed: dict[str, dict[str, Any]] = {}
        self.streaming: dict[str, dict[str, Any]] = {}
        self.extras: dict[str, Any] = {}
        self.upstream_port = free_port()
        self.stream_port = free_port()
        self.base = procs.Watch()
        self.sse_pid = 0

    def wants(self, *ids: str) -> bool:
        return any(i in self.opts.scenarios for i in ids)

    def run(self) -> None:
        try:
            self._upstreams()
            if self.wants("A", "E"):
                self._direct()
            if self.wants("B", "E", "L"):
                self._passthrough()
            if self.wants("N", "L"):
                self._floor()
            if self.wants("C", "D", "E", "L") or self.opts.profile or self.opts.soak_s:
                self._tokengate()
            if self.opts.rounds and self.wants("N") and self.wants("C"):
                self._rounds()
            if self.wants("F"):
                self._litellm()
        finally:
            self.sup.stop_all()

    # --- upstreams and A --------------------------------------------------------

    def _upstreams(self) -> None:
        admin = free_port()
        child = upstream.start(self.sup, self.workdir, self.upstream_port, admin,
                               concurrency=self.opts.upstream_workers)
        self.base.add("upstream envoy", child.proc.pid)
        sse = self.sup.start("sse-upstream", [
            sys.executable, "-m", "bench.sse_server", "--port", str(self.stream_port),
            "--chunks", str(self.opts.stream_chunks), "--gap-ms", str(self.opts.stream_gap_ms)], cwd=ROOT)
        self.sup.wait_until(sse, lambda: port_open(self.stream_port), 10, "accepting connections")
        self.sse_pid = sse.proc.pid
        self.log(f"upstreams: fast Envoy on :{self.upstream_port} ({self.opts.upstream_workers} worker), "
                 f"SSE on :{self.stream_port} ({self.opts.stream_chunks} chunks, {self.opts.stream_gap_ms:g} ms gap)")

    def _watch(self, **more: int) -> procs.Watch:
        w = procs.Watch(dict(self.base.pids), set(self.base.tree))
        for name, pid in more.items():
            w.add(name.replace("_", " "), pid)
        return w

    def _stream_body(self) -> bytes:
        return upstream.openai_request(gateway.STREAM_MODEL, stream=True)

    def _long(self, sid: str, label: str, target: Target, watch: procs.Watch,
              counters: Callable[[], dict[str, int]] | None = None, **kw: Any) -> None:
        """One L row: the long body at c=1 and c=16 (its c=64 would queue 13 MB of bodies and add nothing)."""
        low = tuple(c for c in self.plan.concurrencies if c <= 16) or (min(self.plan.concurrencies),)
        plan = replace(self.plan, concurrencies=low)
        before = counters() if counters else {}
        res = run_fixed(sid, f"{label}, a coding agent's {len(target.body) // 1024} KiB turn", target, plan, watch,
                        log=self.log, **kw)
        if counters:
            res.extra["ext_proc_msgs_per_request"] = gateway.messages_per_request(before, counters())
        self.fixed[sid] = res.as_json()

    def _stream_seconds(self) -> float:
        per = self.opts.stream_chunks * self.opts.stream_gap_ms / 1000 + 1
        return per * self.plan.streams / self.plan.stream_concurrency + 10

    def _direct(self) -> None:
        self.log("A: the fast upstream, called directly")
        url = f"http://127.0.0.1:{self.upstream_port}"
        if self.wants("A"):
            res = run_fixed("A", "fast upstream, direct (Envoy direct_response)", _chat(url, gateway.OPENAI_MODEL, {}),
                            self.plan, self._watch(), log=self.log)
            self.fixed["A"] = res.as_json()
        if self.wants("E"):
            self.streaming["A"] = run_stream(
                "A", "SSE upstream, direct", f"http://127.0.0.1:{self.stream_port}/v1/chat/completions",
                self._stream_body(), {}, self.plan, self._watch(sse_upstream=self.sse_pid),
                max_seconds=self._stream_seconds(), log=self.log)

    # --- B ------------------------------------------------------------------------

    def _passthrough(self) -> None:
        self.log("B: Envoy passthrough (tokengate's render, ext_proc removed)")
        raw = gateway.config(self.workdir / "b", self.upstream_port, self.stream_port, self.opts.workers)
        cfg = parse(raw, "bench passthrough config")
        path = passthrough.write(cfg, "bench/gateway.py", self.opts.workers, self.workdir / "passthrough-envoy.yaml")
        sub = Supervisor(self.workdir / "logs")  # stopped when B is done, before tokengate starts
        try:
            child = upstream.start_envoy(sub, "passthrough-envoy", path, cfg.server.admin_port)
            url = f"http://127.0.0.1:{cfg.server.http_port}"
            watch = self._watch(envoy=child.proc.pid)
            if self.wants("B"):
                target = _chat(url, gateway.OPENAI_MODEL, {"x-tokengate-model": gateway.OPENAI_MODEL})
                self.fixed["B"] = run_fixed("B", "Envoy passthrough, no ext_proc", target, self.plan, watch,
                                            log=self.log).as_json()
            if self.wants("L"):
                self._long("L-B", "Envoy passthrough",
                           _agent(url, gateway.OPENAI_MODEL, {"x-tokengate-model": gateway.OPENAI_MODEL}), watch)
            if self.wants("E"):
                watch.add("sse upstream", self.sse_pid)
                self.streaming["B"] = run_stream(
                    "B", "Envoy passthrough", f"{url}/v1/chat/completions", self._stream_body(),
                    {"x-tokengate-model": gateway.STREAM_MODEL}, self.plan, watch,
                    max_seconds=self._stream_seconds(), log=self.log)
        finally:
            sub.stop_all()

    # --- N: the no-op floor ------------------------------------------------------------

    def _start_floor(self, sub: Supervisor, workdir: Path) -> tuple[str, dict[str, int], int]:
        """tokengate's rendered Envoy config, unchanged, with bench.noop servers on the translator sockets:
        (its URL, the pids to watch, Envoy's admin port)."""
        raw = gateway.config(workdir, self.upstream_port, self.stream_port, self.opts.workers)
        cfg_path = gateway.write(raw, workdir / "gateway.yaml")
        cfg = load(cfg_path)
        addresses = translator_addresses(cfg, self.opts.workers)
        envoy_path = workdir / "envoy.yaml"
        envoy_path.write_text(render(cfg, source=str(cfg_path), addresses=addresses))
        os.environ.update(gateway.SECRETS)
        pids = {}
        for i, address in enumerate(addresses):
            Path(address.removeprefix("unix:")).parent.mkdir(parents=True, exist_ok=True)
            child = sub.start(f"noop-{i}", [sys.executable, "-m", "bench.noop", "--config", str(cfg_path),
                                            "--listen", address], cwd=ROOT)
            sub.wait_until(child, lambda a=address: grpc_serving(a), 20, "serving gRPC health")  # type: ignore[misc]
            pids[f"noop-{i}"] = child.proc.pid
        admin = cfg.server.admin_port
        envoy = upstream.start_envoy(sub, "floor-envoy", envoy_path, admin, concurrency=self.opts.envoy_workers)
        return f"http://127.0.0.1:{cfg.server.http_port}", {"envoy": envoy.proc.pid, **pids}, admin

    def _floor(self) -> None:
        self.log(f"N: the design's floor ({self.opts.workers} no-op ext_proc servers, tokengate's Envoy config)")
        sub = Supervisor(self.workdir / "logs")  # stopped when N is done
        try:
            url, pids, admin = self._start_floor(sub, self.workdir / "n")
            watch = self._watch(**pids)
            if self.wants("N"):
                counters = gateway.envoy_counters(admin)
                res = run_fixed("N", "no-op ext_proc floor (tokengate's Envoy config, nothing done per message)",
                                _chat(url, gateway.OPENAI_MODEL, _floor_auth()), self.plan, watch, log=self.log)
                res.extra["ext_proc_msgs_per_request"] = gateway.messages_per_request(counters,
                                                                                      gateway.envoy_counters(admin))
                self.fixed["N"] = res.as_json()
            if self.wants("L"):
                self._long("L-N", "no-op ext_proc floor", _agent(url, gateway.OPENAI_MODEL, _floor_auth()), watch,
                           lambda: gateway.envoy_counters(admin))
            if self.wants("E"):
                watch.add("sse upstream", self.sse_pid)
                self.streaming["N"] = run_stream(
                    "N", "no-op ext_proc floor", f"{url}/v1/chat/completions", self._stream_body(), _floor_auth(),
                    self.plan, watch, max_seconds=self._stream_seconds(), log=self.log)
        finally:
            sub.stop_all()

    # --- interleaved rounds -------------------------------------------------------------

    def _rounds(self) -> None:
        """The floor and tokengate up together, c=16 runs taking turns (the order rotated each round):
        a slow phase of the machine hits both sides of each ratio alike."""
        n, secs = self.opts.rounds, self.opts.round_s
        self.log(f"rounds: {n} x (N, C{', D1-D5' if self.wants('D') else ''}) at c=16, {secs:g} s each, taking turns")
        sub = Supervisor(self.workdir / "logs")
        gw: gateway.Gateway | None = None
        try:
            url, floor_pids, _ = self._start_floor(sub, self.workdir / "n-rounds")
            gw = gateway.start(self.workdir / "gw-rounds", self.upstream_port, self.stream_port,
                               workers=self.opts.workers, envoy_workers=self.opts.envoy_workers,
                               log_level=self.opts.log_level)
            auth = {"Authorization": f"Bearer {gw.key}"}
            targets = {"N": _chat(url, gateway.OPENAI_MODEL, _floor_auth()),
                       "C": _chat(gw.url, gateway.OPENAI_MODEL, auth)}
            if self.wants("D"):
                targets.update({sid: t for sid, _, t, _ in self._pairs(gw)})
            for t in targets.values():
                wrk.run(t, self.plan.settings(16, max(self.plan.warmup_s, 1.0)))
            streams = {"N": (url, _floor_auth()), "C": (gw.url, auth)} if self.wants("E") else {}
            order = list(targets)
            gw_watch = self._gw_watch(gw)
            watches = {sid: self._watch(**floor_pids) if sid == "N" else gw_watch for sid in order}
            rps: dict[str, list[float]] = {sid: [] for sid in order}
            units: dict[str, list[float | None]] = {sid: [] for sid in order}  # CPU per request, upstream units
            per_1k: dict[str, list[dict[str, float]]] = {sid: [] for sid in order}  # … and each process's, in s
            chunks: dict[str, list[int]] = {sid: [] for sid in streams}
            ttft: dict[str, list[int]] = {sid: [] for sid in streams}
            for r in range(n):
                for sid in order[r % len(order):] + order[:r % len(order)]:
                    run = measured(targets[sid], self.plan.settings(16, secs), watches[sid])
                    rps[sid].append(run["rps"])
                    units[sid].append(upstream_units(run["cpu_per_1k"]))
                    per_1k[sid].append(run["cpu_per_1k"])
                for sid, (base, headers) in streams.items():  # a few streams each, taking turns too
                    got = asyncio.run(stream_client.run(
                        int(base.rsplit(":", 1)[1]), "/v1/chat/completions", self._stream_body(), headers,
                        streams=self.opts.round_streams, concurrency=1, max_seconds=self._stream_seconds()))
                    chunks[sid] += got.chunk_ns
                    ttft[sid] += got.ttft_ns
                self.log(f"  round {r + 1}: " + "  ".join(f"{sid} {v[-1]:,.0f}" for sid, v in rps.items()))
            self.extras["rounds"] = {"count": n, "seconds": secs, "concurrency": 16, "rps": rps, "cpu_units": units,
                                    "cpu_per_1k": per_1k}
            if streams:
                self.extras["rounds"]["streaming"] = {
                    sid: {"chunk_us": summary_json(Summary.of([v / 1e3 for v in chunks[sid]])),
                          "ttft_ms": summary_json(Summary.of([v / 1e6 for v in ttft[sid]]))} for sid in streams}
        finally:
            if gw is not None:
                gw.stack.stop()
            sub.stop_all()

    # --- C, D, E-C, profile, soak ------------------------------------------------------

    def _tokengate(self) -> None:
        self.log(f"C/D/E: tokengate ({self.opts.workers} translator workers, log level {self.opts.log_level})")
        gw = gateway.start(self.workdir / "gw", self.upstream_port, self.stream_port,
                           workers=self.opts.workers, envoy_workers=self.opts.envoy_workers,
                           log_level=self.opts.log_level)
        try:
            self._tokengate_runs(gw)
        finally:
            gw.stack.stop()

    def _gw_watch(self, gw: gateway.Gateway) -> procs.Watch:
        return self._watch(**gw.pids())

    def _tokengate_runs(self, gw: gateway.Gateway) -> None:
        auth = {"Authorization": f"Bearer {gw.key}"}
        same = _chat(gw.url, gateway.OPENAI_MODEL, auth)
        translators = gw.translator_pids()
        if self.wants("C"):
            events_before, counters = gw.metering_events(), gw.envoy_counters()
            res = run_fixed("C", "tokengate, OpenAI -> OpenAI (auth, admission, metering)", same, self.plan,
                            self._gw_watch(gw), translators=translators, log=self.log)
            res.extra["ext_proc_msgs_per_request"] = gateway.messages_per_request(counters, gw.envoy_counters())
            time.sleep(0.5)  # the metering writer batches; let it drain
            sent = sum(r["requests"] for r in res.runs.values())
            res.extra["metering"] = {"events": gw.metering_events() - events_before, "measured_requests": sent,
                                     "note": "events include warm-up, probe and requests cut at a run's end"}
            res.extra["admission"] = gateway.admission_seen(gw.stack.effective_redis_url)
            self.fixed["C"] = res.as_json()
        if self.wants("D"):
            for sid, label, target, key in self._pairs(gw):
                counters = gw.envoy_counters()
                res = run_fixed(sid, label, target, self.plan, self._gw_watch(gw), expect_key=key,
                                translators=translators, log=self.log)
                res.extra["ext_proc_msgs_per_request"] = gateway.messages_per_request(counters, gw.envoy_counters())
                self.fixed[sid] = res.as_json()
        if self.wants("E"):
            watch = self._gw_watch(gw)
            watch.add("sse upstream", self.sse_pid)
            self.streaming["C"] = run_stream(
                "C", "tokengate, OpenAI -> OpenAI", f"{gw.url}/v1/chat/completions", self._stream_body(), auth,
                self.plan, watch, max_seconds=self._stream_seconds(), log=self.log)
            self.streaming["C"]["translator_peak_rss_kib"] = {n: procs.memory_kib(p, "VmHWM") or 0
                                                              for n, p in translators.items()}
        if self.wants("L"):
            self._long("L-C", "tokengate, OpenAI -> OpenAI", _agent(gw.url, gateway.OPENAI_MODEL, auth),
                       self._gw_watch(gw), gw.envoy_counters, translators=translators)
            self._long("L-D1", "tokengate, OpenAI client -> Anthropic upstream",
                       _agent(gw.url, gateway.ANTHROPIC_MODEL, auth), self._gw_watch(gw), gw.envoy_counters,
                       translators=translators)
        if self.opts.profile:
            self._profile(gw, same, translators)
        if self.opts.soak_s:
            stream = (int(gw.cfg["server"]["http_port"]), "/v1/chat/completions", self._stream_body(), auth)
            self.extras["soak"] = soak.run(same, self.opts.soak_connections, self.opts.soak_s, translators, stream,
                                           interval=max(1.0, min(10.0, self.opts.soak_s / 20)), log=self.log)

    def _pairs(self, gw: gateway.Gateway) -> list[tuple[str, str, Target, str]]:
        key = gw.key
        bearer = {"Authorization": f"Bearer {key}"}
        return [
            ("D1", "tokengate, OpenAI client -> Anthropic upstream",
             _chat(gw.url, gateway.ANTHROPIC_MODEL, bearer), "choices"),
            ("D2", "tokengate, Anthropic client -> OpenAI upstream",
             Target(f"{gw.url}/v1/messages", upstream.anthropic_request(gateway.OPENAI_MODEL),
                    {"x-api-key": key, "anthropic-version": "2023-06-01"}), "content"),
            ("D3", "tokengate, Gemini client -> OpenAI upstream",
             Target(f"{gw.url}/v1beta/models/{gateway.OPENAI_MODEL}:generateContent", upstream.gemini_request(),
                    {"x-goog-api-key": key}), "candidates"),
            ("D4", "tokengate, OpenAI Responses client -> Anthropic upstream",
             Target(f"{gw.url}/v1/responses", upstream.responses_request(gateway.ANTHROPIC_MODEL), bearer), "output"),
            ("D5", "tokengate, OpenAI Responses client -> OpenAI Chat Completions upstream",
             Target(f"{gw.url}/v1/responses", upstream.responses_request(gateway.OPENAI_MODEL), bearer), "output"),
        ]

    def _profile(self, gw: gateway.Gateway, target: Target, translators: dict[str, int]) -> None:
        seconds = self.opts.profile_seconds
        self.log(f"profile: py-spy on {len(translators)} translators during a {seconds:g} s C run at c=16")
        started = profile.start(translators, self.opts.results_dir, self.opts.stem, seconds + 2)
        time.sleep(1.0)  # py-spy attached before the load starts
        run = run_fixed("C-profiled", "C under py-spy (not comparable)", target,
                        Plan(duration_s=seconds, warmup_s=0, concurrencies=(16,), wrk_threads=self.plan.wrk_threads),
                        self._gw_watch(gw), log=self.log)
        summary = profile.finish(started, timeout_s=seconds + 30)
        summary["run"] = run.runs.get("16")
        self.extras["profile"] = summary
        for err in summary["errors"]:
            self.log(f"  profile: {err}")
        for row in summary["self"][:12]:
            self.log(f"  {row['percent']:5.1f}%  {row['function']}")

    # --- F --------------------------------------------------------------------------

    def _litellm(self) -> None:
        self.log("F: LiteLLM proxy (1 worker, no database)")
        sub = Supervisor(self.workdir / "logs")  # stopped when F is done
        try:
            try:
                script = litellm.ensure_installed(self.opts.litellm_spec, log=self.log)
                port = free_port()
                child = litellm.start(sub, script, self.workdir, port, self.upstream_port, gateway.OPENAI_MODEL)
            except (litellm.Unavailable, OSError, subprocess.SubprocessError) as exc:
                self.fixed["F"] = {"id": "F", "label": "LiteLLM proxy", "available": False, "reason": str(exc),
                                   "runs": {}, "translator_peak_rss_kib": {}}
                self.log(f"  F: unavailable: {exc}")
                return
            watch = self._watch()
            watch.add("litellm", child.proc.pid, tree=True)
            target = _chat(f"http://127.0.0.1:{port}", gateway.OPENAI_MODEL,
                           {"Authorization": f"Bearer {litellm.MASTER_KEY}"})
            res = run_fixed("F", f"LiteLLM proxy {litellm.version()} (1 worker, no DB)", target, self.plan, watch,
                            log=self.log)
            res.extra["peak_rss_kib"] = sum(procs.memory_kib(p, "VmHWM") or 0
                                            for p in procs.descendants(child.proc.pid))
            self.fixed["F"] = res.as_json()
        finally:
            sub.stop_all()
