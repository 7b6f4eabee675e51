"""The settler: reads metering events from Redis and settles them (``service.Settler``).

Middle layer: imports ``core`` only.
"""
