"""``make bench``: tokengate against a fast fake upstream, bare Envoy and LiteLLM.

One self-contained session on this machine, loopback only, every loop bounded:

    A  the fast upstream called directly (its own ceiling)
    B  Envoy passthrough: tokengate's rendered listener/clusters, ext_proc removed
    C  tokengate, OpenAI -> OpenAI, auth and metering on
    D  tokengate, cross-protocol pairs (when conversion answers 200)
    E  streaming: 200 SSE chunks with a fixed gap; TTFT and per-chunk latency
    F  LiteLLM's proxy (one worker, no database) before the same upstream

``bench.cli`` parses flags, ``bench.session`` runs the scenarios, ``bench.report``
turns the results into ratios, goals and the Markdown table. See docs/performance.md.
"""
