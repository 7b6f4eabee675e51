"""The bottom layer: what every tokengate process shares, importing no other first-party package.

The gateway config (``config``), protocol names (``protocols``), token usage
(``usage``), money and prices (``money``, ``pricing``), the Redis key layout
(``store``), API keys (``keys``), the billing scripts and operations
(``billing``) and logging (``logs``). The translator, the settler and the
portal sit on top of it; the ``tokengate`` command and dev stack on top of
those (docs/architecture.md, "Layers"; ``tests/test_layers.py`` enforces it).
"""
