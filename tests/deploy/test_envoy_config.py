"""The Envoy config in the ConfigMap: current with its gateway config, and valid for Envoy.

``deploy/k8s/base/envoy.yaml`` is the render of ``gateway.yaml`` beside it
(committed, so that an edit shows in review and rolls the pods through the
ConfigMap's hash). ``envoy --mode validate`` loads the config exactly as each
overlay's ConfigMap carries it, with only the pod's mount paths pointed at
files here (a test certificate for the TLS Secret, a test CA for the image's
bundle).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from core.config import load
from tests.deploy.kube import BASE, OVERLAYS, ROOT, arg_after, container, find, render
from tests.deploy.pod import LocalPod, Machine, image_files, local_binaries
from tests.deploy.tls import issue, make_ca
from tokengate.devstack import envoy_binary
from tokengate.render import render as render_envoy
from tokengate.render import translator_addresses

RENDER_COMMAND = ".venv/bin/tokengate render -c deploy/k8s/base/gateway.yaml -o deploy/k8s/base/envoy.yaml"


def test_committed_envoy_config_is_the_render_of_the_gateway_config() -> None:
    """base/envoy.yaml is what `tokengate render` makes of base/gateway.yaml today."""
    cfg = load(BASE / "gateway.yaml")
    fresh = render_envoy(cfg, source="deploy/k8s/base/gateway.yaml",
                         addresses=translator_addresses(cfg, cfg.translator.workers))
    assert fresh == (BASE / "envoy.yaml").read_text(), f"stale: run {RENDER_COMMAND}"


def test_the_gateway_config_names_its_workers() -> None:
    """translator.workers is explicit (0 would mean every core of the node, not the CPU request)."""
    assert load(BASE / "gateway.yaml").translator.workers > 0


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_envoy_accepts_the_config_of_every_overlay(overlay: str) -> None:
    """`envoy --mode validate` passes on the ConfigMap's envoy.yaml, as the Envoy container reads it."""
    objs = render(OVERLAYS[overlay])
    dep = find(objs, "Deployment", "tokengate-gateway")
    spec = dep["spec"]["template"]["spec"]
    envoy = container(spec, "envoy")
    root = Path(tempfile.mkdtemp(prefix="tg-validate-"))
    try:
        ca_pem, ca_key, ca_cert = make_ca()
        (root / "ca.pem").write_bytes(ca_pem.cert)
        served = issue(ca_key, ca_cert, ["localhost"])
        machine = Machine(
            binaries=local_binaries(envoy_binary()),
            files={**image_files(ROOT / "Dockerfile"), "/etc/ssl/certs/ca-certificates.crt": root / "ca.pem"},
            secrets={"tokengate-provider-keys": {}, "tokengate-tls": {"tls.crt": served.cert.decode(),
                                                                      "tls.key": served.key.decode()}},
            config_maps={cm["metadata"]["name"]: dict(cm["data"]) for cm in objs if cm["kind"] == "ConfigMap"},
        )
        pod = LocalPod("gateway", spec, root / "pod", machine)
        config_path = arg_after(envoy["args"], "--config-path")
        as_rendered = find(objs, "ConfigMap", "tokengate-config")["data"]["envoy.yaml"]
        config = root / "envoy.yaml"
        config.write_text(pod.paths(as_rendered, envoy))  # only the mount paths differ
        assert pod.local_path(envoy, config_path).exists()
        proc = subprocess.run([envoy_binary(), "--mode", "validate", "--config-path", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert 0 == proc.returncode, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
