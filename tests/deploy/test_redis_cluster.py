"""The redis-cluster component: the Redis Secret's URL reaches every process that talks to Redis, one
egress rule for it, a settler per master; and the URL the docs and the component show is one
``core.redisconn`` reads as a cluster with a replica waited for."""

from __future__ import annotations

import re
from pathlib import Path

from core import redisconn
from tests.deploy.kube import COMPONENTS, container, find, render_base_with

ROOT = Path(__file__).resolve().parents[2]


def test_the_component_gives_redis_url_to_every_redis_client_and_a_settler_per_master() -> None:
    objs = render_base_with("redis-cluster")
    for name, box in (("tokengate-gateway", "translator"), ("tokengate-settler", "settler"),
                      ("tokengate-portal", "portal")):
        pod = find(objs, "Deployment", name)["spec"]["template"]["spec"]
        [env] = [e for e in container(pod, box)["env"] if e["name"] == "REDIS_URL"]
        assert {"name": "tokengate-redis", "key": "url"} == env["valueFrom"]["secretKeyRef"], name
    for name in ("tokengate-gateway", "tokengate-settler", "tokengate-portal"):
        rules = [r for r in find(objs, "NetworkPolicy", name)["spec"]["egress"]
                 if {p["port"] for p in r["ports"]} & {6379, 6380}]
        assert 1 == len(rules), name
    assert find(objs, "Deployment", "tokengate-settler")["spec"]["replicas"] >= 3


def test_the_documented_cluster_url_is_one_tokengate_reads() -> None:
    texts = [(ROOT / "docs" / "deploy.md").read_text(), (COMPONENTS["redis-cluster"] / "kustomization.yaml").read_text()]
    urls = {u for t in texts for u in re.findall(r"redis\+cluster://\S+\?\S+", t)}
    assert urls
    for url in urls:
        client = redisconn.connect(url.rstrip("`"))
        assert redisconn.is_cluster(client), url
        assert redisconn.options(client).replicas == 1 and redisconn.options(client).shards > 1, url
