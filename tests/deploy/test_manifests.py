"""The Kubernetes manifests: they render, validate strictly, and keep their promises.

Rendered with ``kubectl kustomize`` (every overlay, and the base with each
component), validated with ``kubernetes-validate --strict`` against the oldest
Kubernetes we support and the newest it knows, then checked for what the
schema cannot see: hardening, the couplings between files, the drain budget
and the network policy.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
import tomllib
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version  # type: ignore[import-untyped]

from tests.deploy.crds import SCHEMAS as CRD_SCHEMAS
from tests.deploy.kube import (
    BASE,
    COMPONENTS,
    MIN_KUBERNETES,
    OVERLAYS,
    ROOT,
    Obj,
    arg_after,
    config_map_file,
    container,
    containers,
    cpu_cores,
    env,
    find,
    mount_of,
    of_kind,
    pod_labels,
    pod_templates,
    render,
    render_base_with,
)

RENDERS = {f"overlay:{k}": (lambda p=v: render(p)) for k, v in OVERLAYS.items()}
RENDERS.update({f"base+{k}": (lambda c=k: render_base_with(c)) for k in COMPONENTS})
VERSIONS = [MIN_KUBERNETES, ".".join(latest_version().split(".")[:2])]

# cert-manager's CRD schema is not in kubernetes-validate: these are the fields we use.
CERTIFICATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Certificate"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string"},
                "dnsNames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "issuerRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"group": {"type": "string"}, "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                                   "name": {"type": "string"}},
                },
                "privateKey": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]}, "size": {"type": "integer"},
                                   "rotationPolicy": {"enum": ["Never", "Always"]},
                                   "encoding": {"enum": ["PKCS1", "PKCS8"]}},
                },
                "duration": {"type": "string", "pattern": r"^\d+(h|m|s)$"},
                "renewBefore": {"type": "string", "pattern": r"^\d+(h|m|s)$"},
            },
        },
    },
}


@pytest.fixture(params=sorted(RENDERS), scope="module")
def objs(request: pytest.FixtureRequest) -> list[Obj]:
    return RENDERS[request.param]()


@pytest.fixture(params=sorted(OVERLAYS), scope="module")
def overlay(request: pytest.FixtureRequest) -> list[Obj]:
    return render(OVERLAYS[request.param])


def gateway_pod(objs: list[Obj]) -> Obj:
    return dict(find(objs, "Deployment", "tokengate-gateway")["spec"]["template"]["spec"])


def gateway_config(objs: list[Obj]) -> Obj:
    return dict(yaml.safe_load(config_map_file(objs, "tokengate-config", "gateway.yaml")))


def envoy_config(objs: list[Obj]) -> Obj:
    return dict(yaml.safe_load(config_map_file(objs, "tokengate-config", "envoy.yaml")))


# --- rendering and schemas -----------------------------------------------------------------


@functools.cache
def _problem(doc: str, version: str) -> str | None:
    """What kubernetes-validate --strict finds wrong with one object (memoised: renders share objects)."""
    o = json.loads(doc)
    try:
        kubernetes_validate.validate(o, version, strict=True)
    except SchemaNotFoundError:
        custom = {("cert-manager.io/v1", "Certificate"): CERTIFICATE_SCHEMA, **CRD_SCHEMAS}
        if (o["apiVersion"], o["kind"]) not in custom:
            return f"{o['kind']}/{o['metadata']['name']}: no schema for {o['apiVersion']}"
        jsonschema.validate(o, custom[o["apiVersion"], o["kind"]])
    except jsonschema.ValidationError as exc:
        return f"{o['kind']}/{o['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
    return None


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(objs: list[Obj], version: str) -> None:
    """Each rendered object passes kubernetes-validate --strict (cert-manager's Certificate and the Prometheus
    Operator's PodMonitor and PrometheusRule: our schemas of their CRDs, tests/deploy/crds.py)."""
    problems = [_problem(json.dumps(o, sort_keys=True), version) for o in objs]
    assert [] == [p for p in problems if p]


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The validator is not vacuous: an unknown container field fails in strict mode."""
    dep = find(render(OVERLAYS["dev"]), "Deployment", "tokengate-gateway")
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(dep, MIN_KUBERNETES, strict=True)


def test_every_overlay_and_component_renders() -> None:
    """Overlays dev and prod exist; every component is used by an overlay or rendered with the base."""
    assert {"dev", "prod"} <= set(OVERLAYS)
    assert {"redis-in-cluster", "redis-external", "cert-manager", "ingress", "loadbalancer",
            "monitoring"} <= set(COMPONENTS)


def test_overlays_hold_only_small_named_patches() -> None:
    """An overlay is a kustomization, its namespace, and patches/*.yaml of a few lines each."""
    for name, path in OVERLAYS.items():
        files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        patches = [f for f in files if f.startswith("patches/")]
        assert ["kustomization.yaml", "namespace.yaml", *patches] == files, name
        for f in patches:
            assert len((path / f).read_text().splitlines()) <= 40, f"{name}/{f} is not a small patch"


# --- hardening -------------------------------------------------------------------------------


def test_every_pod_is_hardened(objs: list[Obj]) -> None:
    """Non-root, seccomp RuntimeDefault, no API token, no service links, nothing from the host."""
    for name, pod in pod_templates(objs):
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0, name
        assert {"type": "RuntimeDefault"} == sc["seccompProfile"], name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["enableServiceLinks"] is False, name
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not any("hostPath" in v for v in pod.get("volumes", [])), name


def test_every_container_is_hardened_and_bounded(objs: list[Obj]) -> None:
    """Read-only root, all capabilities dropped, no escalation; CPU and memory requested and limited."""
    for name, pod in pod_templates(objs):
        for c in containers(pod):
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert ["ALL"] == sc["capabilities"]["drop"] and "add" not in sc["capabilities"], where
            assert not sc.get("privileged"), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where} {kind}"
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, f"{where}: {image} has no tag"
            assert not image.endswith(":latest"), where


def test_the_image_tag_is_the_project_version() -> None:
    """base pins the image at pyproject's version, as the Dockerfile labels it."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert version == next(i["newTag"] for i in base["images"] if i["name"] == "tokengate")
    assert f'org.opencontainers.image.version="{version}"' in (ROOT / "Dockerfile").read_text()


def test_provider_credentials_live_in_secrets_only(overlay: list[Obj]) -> None:
    """Every provider key is a file under a mounted Secret; no ConfigMap carries a credential."""
    pod = gateway_pod(overlay)
    translator = container(pod, "translator")
    for p in gateway_config(overlay)["providers"]:
        key = p["api_key"]
        assert set(key) == {"file"}, p["name"]
        found = mount_of(pod, translator, key["file"])
        assert found is not None and "secret" in found[0], f"{p['name']}: {key['file']} is not in a Secret"
    for cm in of_kind(overlay, "ConfigMap"):
        text = yaml.safe_dump(cm["data"])
        assert not re.search(r"sk-[A-Za-z0-9]{16,}|api_key:\s*['\"]?[A-Za-z0-9]{20,}", text), cm["metadata"]["name"]
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"]
                   for _, p in pod_templates(overlay) for c in containers(p) for e in c.get("env", [])
                   if "secretKeyRef" in e.get("valueFrom", {})}
    # the Redis password or URL; the portal's CSRF key, admins and webhook secret; nothing else via env
    assert {"tokengate-redis", "tokengate-portal"} == secret_refs


# --- the gateway pod's couplings ---------------------------------------------------------------


def test_the_translator_is_a_native_sidecar_sharing_a_socket_folder_with_envoy(overlay: list[Obj]) -> None:
    """initContainer with restartPolicy Always; socket_dir is one emptyDir mounted in both containers."""
    pod = gateway_pod(overlay)
    assert ["translator"] == [c["name"] for c in pod["initContainers"]]
    assert "Always" == pod["initContainers"][0]["restartPolicy"]
    assert ["envoy"] == [c["name"] for c in pod["containers"]]
    socket_dir = gateway_config(overlay)["translator"]["socket_dir"]
    holders = {name: mount_of(pod, container(pod, name), socket_dir) for name in ("translator", "envoy")}
    assert all(h is not None and "emptyDir" in h[0] for h in holders.values()), holders
    assert holders["translator"] == holders["envoy"]


def test_one_translator_process_per_requested_cpu(overlay: list[Obj]) -> None:
    """translator.workers = the sidecar's CPU request = the sockets in Envoy's translator cluster."""
    pod = gateway_pod(overlay)
    workers = gateway_config(overlay)["translator"]["workers"]
    cpu = cpu_cores(container(pod, "translator")["resources"]["requests"]["cpu"])
    assert workers == cpu and workers == int(workers)
    cluster = next(c for c in envoy_config(overlay)["static_resources"]["clusters"] if c["name"] == "translator")
    pipes = [ep["endpoint"]["address"]["pipe"]["path"] for ep in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    socket_dir = gateway_config(overlay)["translator"]["socket_dir"]
    assert [f"{socket_dir}/translator-{i}.sock" for i in range(workers)] == pipes


def test_envoy_worker_threads_match_its_cpu_request(overlay: list[Obj]) -> None:
    """--concurrency = Envoy's CPU request (Envoy's default is every core of the node)."""
    envoy = container(gateway_pod(overlay), "envoy")
    assert math.ceil(cpu_cores(envoy["resources"]["requests"]["cpu"])) == int(arg_after(envoy["args"], "--concurrency"))


def test_the_grace_period_outlasts_the_drain_and_the_longest_stream(overlay: list[Obj]) -> None:
    """terminationGracePeriodSeconds > drain time + longest stream + the translator's grace + 5 s."""
    pod = gateway_pod(overlay)
    envoy, translator = container(pod, "envoy"), container(pod, "translator")
    drain = int(env(envoy, "TOKENGATE_DRAIN_TIME_S")["value"])
    longest = int(env(envoy, "TOKENGATE_MAX_STREAM_S")["value"])
    grace = float(arg_after(translator["args"], "--grace"))
    assert "$(TOKENGATE_DRAIN_TIME_S)" == arg_after(envoy["args"], "--drain-time-s")  # one number for both
    assert "immediate" == arg_after(envoy["args"], "--drain-strategy")
    assert pod["terminationGracePeriodSeconds"] >= drain + longest + grace + 5


def test_envoy_drains_before_stopping_and_is_probed_on_its_own(overlay: list[Obj]) -> None:
    """preStop runs envoyctl drain; liveness asks admin (loopback); readiness and startup ask /ready."""
    pod = gateway_pod(overlay)
    envoy = container(pod, "envoy")
    config = arg_after(envoy["args"], "--config-path")
    hook = envoy["lifecycle"]["preStop"]["exec"]["command"]
    live = envoy["livenessProbe"]["exec"]["command"]
    assert "drain" in hook and "alive" in live
    assert config == arg_after(hook, "--config") == arg_after(live, "--config")
    found = mount_of(pod, envoy, config)
    assert found is not None and "configMap" in found[0]
    ready_port = gateway_config(overlay)["server"]["ready_port"]
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    assert ready_port == ports["ready"]
    for kind in ("startupProbe", "readinessProbe"):
        assert {"path": "/ready", "port": "ready"} == envoy[kind]["httpGet"], kind
    admin = envoy_config(overlay)["admin"]["address"]["socket_address"]
    assert "127.0.0.1" == admin["address"]


def test_the_translator_is_probed_over_grpc_health(overlay: list[Obj]) -> None:
    """startup, readiness and liveness are gRPC probes on the port --health-listen opens; its other port is
    the metrics the config's translator.metrics_listen serves (on every address: Prometheus scrapes it)."""
    translator = container(gateway_pod(overlay), "translator")
    port = int(arg_after(translator["args"], "--health-listen").rsplit(":", 1)[1])
    host, _, metrics = gateway_config(overlay)["translator"]["metrics_listen"].rpartition(":")
    assert "0.0.0.0" == host
    assert {"grpc-health": port, "metrics": int(metrics)} == {p["name"]: p["containerPort"] for p in translator["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert {"port": port} == translator[kind]["grpc"], kind
        assert translator[kind]["periodSeconds"] * translator[kind]["failureThreshold"] >= 10, kind


def test_ports_and_files_agree_with_the_gateway_config(overlay: list[Obj]) -> None:
    """Envoy's container ports are the config's listeners; every file the config names is mounted."""
    pod = gateway_pod(overlay)
    envoy, translator = container(pod, "envoy"), container(pod, "translator")
    server = gateway_config(overlay)["server"]
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    assert {"http": server["http_port"], "https": server["https_port"], "ready": server["ready_port"]} == ports
    for path in (server["tls_cert"], server["tls_key"]):
        found = mount_of(pod, envoy, path)
        assert found is not None and "secret" in found[0], path
        assert found[1] in [i["path"] for i in found[0]["secret"]["items"]], path
    assert mount_of(pod, envoy, server["ca_bundle"]) is None  # the image's own bundle, not a mount
    assert mount_of(pod, translator, gateway_config(overlay)["translator"]["socket_dir"]) is not None


def test_the_metering_spool_is_on_disk_and_outlives_the_translator_container(overlay: list[Obj]) -> None:
    """translator.spool.dir is a disk-backed emptyDir of the pod (kept across container restarts), larger
    than what the workers may keep in it (above its sizeLimit the kubelet would evict the pod)."""
    pod = gateway_pod(overlay)
    cfg = gateway_config(overlay)["translator"]
    found = mount_of(pod, container(pod, "translator"), cfg["spool"]["dir"])
    assert found is not None and "emptyDir" in found[0], "the spool is a volume, not the container's own files"
    empty_dir = found[0]["emptyDir"]
    assert "medium" not in empty_dir, "on disk, not in the pod's memory"
    limit = empty_dir["sizeLimit"]
    assert limit.endswith("Gi") and int(limit[:-2]) * 1024 > cfg["workers"] * cfg["spool"]["max_mb"], limit


def test_selectors_match_the_pods(objs: list[Obj]) -> None:
    """Every Service, PDB, HPA and NetworkPolicy selects or targets something that exists."""
    labels = pod_labels(objs)

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, lab in labels.items() if selector.items() <= lab.items()]

    for svc in of_kind(objs, "Service"):
        assert selects(svc["spec"]["selector"]), svc["metadata"]["name"]
    for pdb in of_kind(objs, "PodDisruptionBudget"):
        assert selects(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]
    for np in of_kind(objs, "NetworkPolicy"):
        sel = np["spec"]["podSelector"].get("matchLabels", {})
        assert not sel or selects(sel), np["metadata"]["name"]
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        pod = find(objs, ref["kind"], ref["name"])["spec"]["template"]["spec"]
        names = {c["name"] for c in containers(pod)}
        for m in hpa["spec"]["metrics"]:
            assert m["containerResource"]["container"] in names
        assert "replicas" not in find(objs, ref["kind"], ref["name"])["spec"]  # the HPA owns the count


# --- network policy --------------------------------------------------------------------------


def _egress_ports(np: Obj) -> set[int]:
    return {p["port"] for rule in np["spec"].get("egress", []) for p in rule.get("ports", [])}


def test_every_pod_has_a_policy_and_the_namespace_denies_by_default(overlay: list[Obj]) -> None:
    """default-deny for the namespace, and one NetworkPolicy of its own for every workload."""
    policies = of_kind(overlay, "NetworkPolicy")
    deny = find(overlay, "NetworkPolicy", "default-deny")["spec"]
    assert {} == deny["podSelector"] and ["Ingress", "Egress"] == deny["policyTypes"]
    for name, labels in pod_labels(overlay).items():
        own = [np for np in policies if np["spec"]["podSelector"].get("matchLabels")
               and np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(own) == 1, name
        assert ["Ingress", "Egress"] == own[0]["spec"]["policyTypes"], name


def test_gateway_egress_is_dns_providers_on_443_and_redis(overlay: list[Obj]) -> None:
    """The gateway pod may reach DNS, public addresses on 443 (never private ranges or metadata), Redis,
    and the portal's pods on 8091 (Envoy forwards /portal)."""
    np = find(overlay, "NetworkPolicy", "tokengate-gateway")
    assert _egress_ports(np) <= {53, 443, 6379, 6380, 8091}
    portal = next(r for r in np["spec"]["egress"] if {p["port"] for p in r["ports"]} == {8091})
    assert {"app.kubernetes.io/name": "tokengate", "app.kubernetes.io/component": "portal"} == \
        portal["to"][0]["podSelector"]["matchLabels"]
    public = next(r for r in np["spec"]["egress"] if {p["port"] for p in r["ports"]} == {443})
    blocked = [ipaddress.ip_network(c) for b in public["to"] for c in b["ipBlock"]["except"]]
    for must in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fd00::1"):
        assert any(ipaddress.ip_address(must) in net for net in blocked), must
    dns = next(r for r in np["spec"]["egress"] if 53 in {p["port"] for p in r["ports"]})
    assert {"k8s-app": "kube-dns"} == dns["to"][0]["podSelector"]["matchLabels"]
    redis_rules = [r for r in np["spec"]["egress"] if {p["port"] for p in r["ports"]} & {6379, 6380}]
    assert 1 == len(redis_rules), "exactly one Redis rule (from the redis component)"
    settler = find(overlay, "NetworkPolicy", "tokengate-settler")
    assert _egress_ports(settler) <= {53, 6379, 6380} and [] == settler["spec"]["ingress"]
    portal_np = find(overlay, "NetworkPolicy", "tokengate-portal")
    assert _egress_ports(portal_np) <= {53, 6379, 6380}
    [ingress] = portal_np["spec"]["ingress"]
    assert "gateway" == ingress["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]


def test_in_cluster_redis_admits_only_tokengate_pods() -> None:
    """Redis: ingress from pods part-of tokengate on its port only, no egress, AOF on, noeviction."""
    objs = render(OVERLAYS["dev"])
    np = find(objs, "NetworkPolicy", "tokengate-redis")["spec"]
    assert [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tokengate"}}}] == np["ingress"][0]["from"]
    assert [] == np["egress"]
    gateway = find(objs, "Deployment", "tokengate-gateway")["spec"]["template"]["metadata"]["labels"]
    assert "tokengate" == gateway["app.kubernetes.io/part-of"]
    redis = find(objs, "StatefulSet", "tokengate-redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "yes" == arg_after(args, "--appendonly") and "noeviction" == arg_after(args, "--maxmemory-policy")
    assert "/data" == arg_after(args, "--dir")
    assert ["data"] == [t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]]


def test_namespaces_enforce_restricted_pod_security(overlay: list[Obj]) -> None:
    """Each overlay's namespace enforces Pod Security 'restricted', which the pods above satisfy."""
    ns = of_kind(overlay, "Namespace")
    assert 1 == len(ns)
    assert "restricted" == ns[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    assert all(o["metadata"].get("namespace") == ns[0]["metadata"]["name"]
               for o in overlay if o["kind"] != "Namespace")
