"""tokengate translator: the Envoy external-processing service.

Laid out along the data path: ``extproc/`` (gRPC servicer, the error boundary and
the per-phase processors), ``endpoints`` (which path is which protocol), ``sse``
(SSE framing), ``protocols/`` (the registry and a folder per protocol: one codec
each), ``ir`` (what codecs decode into), ``admission`` and ``metering``.
"""
