"""tokengate: the command line, the Envoy config rendered from the gateway config, and the dev stack.

The top layer: the ``tokengate`` command (``cli``), the admin API
(``admin_api``), ``make run``'s supervisor (``devstack``, ``procs``) and the
Envoy config renderer (``render``). It may import every other package; no
other package imports it (docs/architecture.md, "Layers").
"""
