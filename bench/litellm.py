"""Scenario F: LiteLLM's proxy (one worker, no database) before the same fast upstream.

Installed by the bench into ``bench/.venv-litellm`` on first use and reused after
(a stamp file records the requirement it was made for). The version is pinned:
1.82.7 and 1.82.8 were a supply-chain compromise (March 2026) and an open
``litellm`` requirement is how such a release would arrive. Run with the cost map
from the package (``LITELLM_LOCAL_MODEL_COST_MAP``) and telemetry off, so it talks
to loopback only. A master key is set so callers authenticate, as with tokengate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tokengate.devstack import http_ok
from tokengate.procs import Child, Supervisor

SPEC = "litellm[proxy]==1.82.6"
VENV = Path(__file__).resolve().parent / ".venv-litellm"
MASTER_KEY = "sk-bench-litellm-master"


class Unavailable(RuntimeError):
    """LiteLLM could not be installed or started; the message says why."""


def _stamp(venv: Path) -> Path:
    return venv / ".bench-installed"


def _stamped(spec: str) -> str:
    """What the stamp says of an install: ``spec`` on this interpreter (LiteLLM runs on the one tokengate runs on,
    and a venv made from another — say before ``make venv`` changed interpreter — is made again)."""
    return f"{spec}\n{os.path.realpath(sys.executable)}\n"


def ensure_installed(spec: str = SPEC, venv: Path = VENV, log: Callable[[str], None] = print) -> Path:
    """The venv's ``litellm`` script, installing ``spec`` first when the venv lacks it or was made for another
    spec or interpreter."""
    script = venv / "bin" / "litellm"
    stamp = _stamp(venv)
    if script.exists() and stamp.exists() and stamp.read_text() == _stamped(spec):
        return script
    log(f"  F: installing {spec} into {venv} (first use; cached afterwards)…")
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off", spec]]
    for argv in steps:
        # pip's progress goes straight to our stdout; its errors are kept for the report
        proc = subprocess.run(argv, stdout=None, stderr=subprocess.PIPE, text=True, timeout=1800)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-3:]
            raise Unavailable(f"`{' '.join(argv[-3:])}` failed: {' / '.join(tail)}")
        log(f"  F: {' '.join(argv[1:4])} … done")
    if not script.exists():
        raise Unavailable(f"{spec} installed no litellm script")
    stamp.write_text(_stamped(spec))
    return script


def version(venv: Path = VENV) -> str:
    proc = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import importlib.metadata as m; print(m.version('litellm'))"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or "unknown"


def config(upstream_port: int, model: str) -> dict[str, Any]:
    return {
        "model_list": [{
            "model_name": model,
            "litellm_params": {"model": f"openai/{model}", "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                               "api_key": "sk-bench-upstream-openai"},
        }],
        "litellm_settings": {"telemetry": False, "set_verbose": False},
        "general_settings": {"master_key": MASTER_KEY},
    }


def start(sup: Supervisor, script: Path, workdir: Path, port: int, upstream_port: int, model: str) -> Child:
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config(upstream_port, model), sort_keys=False))
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list from the internet
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "127.0.0.1,localhost",
        "STORE_MODEL_IN_DB": "False",
    }
    os.environ.pop("DATABASE_URL", None)  # "no database": children inherit our environment
    child = sup.start("litellm", [str(script), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
                                  "--num_workers", "1", "--telemetry", "False"], env=env, cwd=workdir)
    try:
        sup.wait_until(child, lambda: http_ok(f"http://127.0.0.1:{port}/health/liveliness"), 120,
                       "answering /health/liveliness")
    except Exception as exc:
        raise Unavailable(str(exc).splitlines()[0]) from exc
    return child
