"""``python -m bench`` (``make bench``): flags, machine facts, the results file, the table."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import report
from bench.scenarios import Plan
from bench.session import ALL, ROOT, Options, Session
from tokengate.devstack import envoy_binary


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--scenarios", default=",".join(ALL),
                   help=f"comma list of {', '.join(ALL)}, or none (e.g. with --soak)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario (default 2)")
    p.add_argument("--concurrency", default="1,16,64", help="wrk connection counts (default 1,16,64)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: it shares our 2 cores)")
    p.add_argument("--workers", type=int, default=2, help="translator processes (default 2)")
    p.add_argument("--envoy-workers", type=int, default=0, help="Envoy --concurrency (default: Envoy's, one per core)")
    p.add_argument("--upstream-workers", type=int, default=1, help="worker threads of the fast upstream Envoy")
    p.add_argument("--log-level", default="warning", help="translator log level (info logs every request)")
    p.add_argument("--streams", type=int, default=40, help="streams per E path (default 40; 10 left TTFT noisy)")
    p.add_argument("--stream-concurrency", type=int, default=1, help="concurrent streams in E (default 1)")
    p.add_argument("--stream-chunks", type=int, default=200)
    p.add_argument("--stream-gap-ms", type=float, default=5.0)
    p.add_argument("--profile", action="store_true", help="py-spy the translators during a C run")
    p.add_argument("--profile-seconds", type=float, default=15.0)
    p.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="hold moderate load this long")
    p.add_argument("--soak-connections", type=int, default=4)
    p.add_argument("--rounds", type=int, default=10,  # a round's N/C moves ±0.1; the median of 5 moved ±0.03
                   help="interleaved c=16 rounds of N, C and D with both stacks up (0: none; default 10)")
    p.add_argument("--round-seconds", type=float, default=4.0)
    p.add_argument("--round-streams", type=int, default=Options.round_streams,
                   help="streams of N and of C per round when E runs too (default 2)")
    p.add_argument("--litellm-spec", default=Options.litellm_spec, help="pip requirement for scenario F")
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--keep-workdir", action="store_true", help="keep configs and process logs")
    p.add_argument("--table", type=Path, metavar="RESULTS_JSON", help="only print the table of a saved run")
    return p


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kib / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def git_state() -> dict[str, str]:
    def git(*args: str) -> str:
        return _version(["git", "-C", str(ROOT), *args])

    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True,
                           timeout=30).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": "yes" if dirty else "no"}


def options(args: argparse.Namespace, stem: str) -> Options:
    wanted = tuple(s.strip().upper() for s in args.scenarios.split(",") if s.strip() and s.strip() != "none")
    unknown = set(wanted) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown scenarios: {sorted(unknown)} (choose from {', '.join(ALL)})")
    plan = Plan(duration_s=args.duration, warmup_s=args.warmup,
                concurrencies=tuple(int(c) for c in args.concurrency.split(",")), wrk_threads=args.wrk_threads,
                streams=args.streams, stream_concurrency=args.stream_concurrency)
    return Options(plan=plan, scenarios=wanted, workers=args.workers, envoy_workers=args.envoy_workers,
                   upstream_workers=args.upstream_workers,
                   log_level=args.log_level, stream_chunks=args.stream_chunks, stream_gap_ms=args.stream_gap_ms,
                   profile=args.profile, profile_seconds=args.profile_seconds, soak_s=args.soak,
                   soak_connections=args.soak_connections, rounds=args.rounds, round_s=args.round_seconds,
                   round_streams=args.round_streams,
                   litellm_spec=args.litellm_spec,
                   results_dir=args.results_dir, stem=stem)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.table:
        print(report.markdown(json.loads(args.table.read_text())), end="")
        return 0
    started = dt.datetime.now(dt.UTC)
    stem = started.strftime("%Y%m%dT%H%M%SZ")
    opts = options(args, stem)
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="tokengate-bench-"))
    print(f"bench: scenarios {','.join(opts.scenarios)}, {opts.plan.duration_s:g} s per run, "
          f"concurrency {list(opts.plan.concurrencies)}; workdir {workdir}", flush=True)
    session = Session(opts, workdir, log=lambda line: print(line, flush=True))
    t0 = time.monotonic()
    failed: BaseException | None = None
    try:
        session.run()
    except Exception as exc:  # still write what was measured, then fail
        failed = exc
    finally:
        if not args.keep_workdir and failed is None:
            shutil.rmtree(workdir, ignore_errors=True)
    plan_json = asdict(opts.plan)
    doc = {
        "meta": {
            "started": started.isoformat(timespec="seconds"), "seconds": round(time.monotonic() - t0, 1),
            "machine": machine(), "git": git_state(),
            "versions": {"envoy": _version([envoy_binary(), "--version"]).split("version:")[-1].strip(),
                         "wrk": _version(["wrk", "--version"]).split("[")[0].strip()},
            "options": {**plan_json, "wrk": opts.plan.settings(16).describe().replace("-c16", "-c{N}"),
                        "scenarios": list(opts.scenarios), "workers": opts.workers,
                        "envoy_workers": opts.envoy_workers,
                        "upstream_workers": opts.upstream_workers, "log_level": opts.log_level,
                        "stream_chunks": opts.stream_chunks, "stream_gap_ms": opts.stream_gap_ms,
                        "litellm_spec": opts.litellm_spec},
            "error": None if failed is None else f"{type(failed).__name__}: {failed}",
        },
        "fixed": session.fixed, "streaming": session.streaming, **session.extras,
    }
    out = opts.results_dir / f"{stem}.json"
    out.write_text(json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
    print()
    print(report.markdown(doc), end="")
    print(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if failed is not None:
        print(f"bench: FAILED: {failed} (process logs kept in {workdir / 'logs'})", file=sys.stderr)
        return 1
    return 0
