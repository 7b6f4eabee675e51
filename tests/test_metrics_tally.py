"""translator.metrics.Tally: samples added up in process and flushed give prometheus_client exactly what
writing each at once gives (bucket bounds, +Inf, sums, counters), and nothing before the flush."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from translator.metrics import Tally

BUCKETS = (0.01, 0.1, 1, 10)
# on a bound, between bounds, below the first, above the last (+Inf), zero, negative, repeated
AMOUNTS = [0.01, 0.1, 1, 10, 0.05, 0.5, 5, 0.001, 11, 1e9, 0, -1, 0.05, 0.05]


def metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    return (Counter("t_requests_total", "requests", ["model"], registry=registry),
            Histogram("t_seconds", "duration", ["model"], buckets=BUCKETS, registry=registry))


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], Any]]:
    """Every sample but the ``_created`` timestamps (which differ between two registries)."""
    return [(x.name, x.labels, x.value) for m in registry.collect() for x in m.samples
            if not x.name.endswith("_created")]


def test_a_flushed_tally_equals_each_sample_written_at_once() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    (dc, dh), (tc, th) = metrics(direct), metrics(tallied)
    tally = Tally()
    for i, amount in enumerate(AMOUNTS):
        model = ("a", "b")[i % 2]
        dc.labels(model).inc(i)
        dh.labels(model).observe(amount)
        tally.inc(tc.labels(model), i)
        tally.observe(th.labels(model), amount)
    assert {0.0} == {value for _, _, value in samples(tallied)}  # nothing reached prometheus_client yet
    tally.flush()
    assert samples(direct) == samples(tallied)
    assert ("t_seconds_bucket", {"model": "a", "le": "+Inf"}, 7.0) in samples(tallied)
    tally.flush()  # an empty tally adds nothing
    assert samples(direct) == samples(tallied)
