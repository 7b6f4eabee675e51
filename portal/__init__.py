"""The tokengate portal: a server-rendered web application over the billing data.

Users sign up with an e-mail and a password, top up their prepaid balance, manage
API keys, and read their usage; admins credit accounts, issue redeem codes and
watch deployment health. Served under ``/portal`` (behind Envoy, or directly).

    app.py          create_app(): the route table, security headers, lifespan
    web.py          per-request context: session, CSRF-checked form, rendering
    settings.py     what the operator configures (payments, admins, cookies)
    formatting.py   dollars from integer nano-USD, tokens, local times
    security/       passwords (scrypt), sessions, CSRF tokens, failed-login limits
    users.py        portal users; each owns one billing account
    payments/       top-up orders and the providers behind one interface
                    (redeem codes, a Stripe-signed webhook, the demo provider)
    reports.py      usage rows, recent requests, keys' last use
    chart.py        the usage chart, rendered server-side as SVG
    envoy_health.py deployment health from Envoy's admin /clusters
    views/          one module per page group: auth, account, keys, usage, models, admin
    templates/ static/   Jinja2 templates and the bundled CSS/JS (no CDN)

Money comes and goes only through ``core.billing.ops.Billing`` and keys only
through ``core.keys``: the portal adds no second way to move a balance.
"""
