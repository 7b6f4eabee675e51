"""tokengate: configuration, Envoy rendering, key management and the local dev stack.

The data path itself lives in ``translator`` (the ext_proc service); this package
holds what surrounds it: the gateway config (``config``), the Envoy config
rendered from it (``render``), the Redis key layout (``store``), the
``tokengate`` command (``cli``) and ``make run``'s process supervisor (``devstack``).
"""
