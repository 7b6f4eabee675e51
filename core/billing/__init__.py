"""Prepaid billing: admission holds, settlement, top-ups, ledger and usage, all in Redis.

    admit    (translator, request start)  one Lua call: key, model, rate limits,
                                          balance minus holds >= hold -> place hold
    meter    (translator, request end)    one event on the tg:metering stream
    settle   (settler, consumer group)    one idempotent Lua call per event: charge,
                                          release hold, ledger, usage aggregates
    reap     (settler, timer)             release holds whose request never reported
    topup    (admin)                      idempotent by reference, ledger entry

Money is integer nano-USD (see ``core.pricing``). Every key of one account
carries the account's hash tag, so each script touches one Cluster slot.
"""
