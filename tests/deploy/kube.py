"""The Kubernetes manifests as the tests see them: rendered by ``kubectl kustomize``.

    objs = render(OVERLAYS["dev"])            # every object of an overlay, as dicts
    dep = find(objs, "Deployment", "tokengate-gateway")
    pod = dep["spec"]["template"]["spec"]
    translator = container(pod, "translator")  # init (sidecar) and app containers alike
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = {p.name: p for p in sorted((K8S / "overlays").iterdir()) if (p / "kustomization.yaml").exists()}
COMPONENTS = {p.name: p for p in sorted((K8S / "components").iterdir()) if (p / "kustomization.yaml").exists()}
# Native sidecars are on by default from 1.29 (and the HPA counts them); the newest is what
# kubernetes-validate knows best.
MIN_KUBERNETES = "1.29"

Obj = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl (with kustomize) is needed for tests/deploy: install kubectl")
    return found


def _kustomize(path: Path) -> str:
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{proc.stderr}")
    return proc.stdout


@functools.cache
def _render_text(path: Path) -> str:
    return _kustomize(path)


def render(path: Path) -> list[Obj]:
    """Every object ``kubectl kustomize PATH`` prints (a fresh copy each call)."""
    return [d for d in yaml.safe_load_all(_render_text(path)) if d]


@functools.cache
def _render_base_with(component: str) -> str:
    with tempfile.TemporaryDirectory(prefix="tg-kustomize-") as tmp:
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(BASE, tmp)],  # kustomize takes relative roots only
            "components": [os.path.relpath(COMPONENTS[component], tmp)],
        }))
        return _kustomize(Path(tmp))


def render_base_with(component: str) -> list[Obj]:
    """The base plus one component, through a throwaway kustomization."""
    return [d for d in yaml.safe_load_all(_render_base_with(component)) if d]


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    """The object of that kind whose name is ``name`` (or, for generated ones, starts with ``name-``)."""
    for o in objs:
        n = o["metadata"]["name"]
        if o["kind"] == kind and (n == name or (kind in ("ConfigMap", "Secret") and n.startswith(name + "-"))):
            return o
    raise KeyError(f"no {kind} {name}")


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def pod_templates(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(workload name, pod spec) of every Deployment and StatefulSet."""
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def pod_labels(objs: list[Obj]) -> dict[str, dict[str, str]]:
    """Workload name -> the labels of its pods."""
    return {o["metadata"]["name"]: dict(o["spec"]["template"]["metadata"]["labels"])
            for o in objs if o["kind"] in ("Deployment", "StatefulSet")}


def containers(pod: Obj) -> list[Obj]:
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def container(pod: Obj, name: str) -> Obj:
    return next(c for c in containers(pod) if c["name"] == name)


def env(c: Obj, name: str) -> Obj:
    return next(e for e in c.get("env", []) if e["name"] == name)


def arg_after(argv: list[str], flag: str) -> str:
    """The value of ``--flag value`` in a command line."""
    return argv[argv.index(flag) + 1]


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def volume(pod: Obj, name: str) -> Obj:
    return next(v for v in pod["volumes"] if v["name"] == name)


def mount_of(pod: Obj, c: Obj, path: str) -> tuple[Obj, str] | None:
    """The volume holding ``path`` in container ``c``, and the path inside the volume."""
    best: tuple[Obj, str] | None = None
    best_len = -1
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and len(mp) > best_len:
            best, best_len = (volume(pod, m["name"]), path[len(mp):].lstrip("/")), len(mp)
    return best


def config_map_file(objs: list[Obj], name: str, key: str) -> str:
    return str(find(objs, "ConfigMap", name)["data"][key])
