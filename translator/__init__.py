"""tokengate translator: the Envoy external-processing service.

Laid out along the data path: ``extproc/`` (gRPC servicer and per-phase
processors), ``endpoints`` (which path is which protocol), ``sse`` (SSE framing),
``usage`` (token buckets), ``protocols/`` (one codec per protocol).
"""
