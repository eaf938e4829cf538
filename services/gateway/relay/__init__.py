"""Events from the broker to HTTP clients.

- ``event_relay.py``: per-simulation order, fan-out to followers, when to read the log (pure);
- ``feeds.py``: the cache of recent simulations, bounded by count and bytes (pure);
- ``misses.py``: ids the log did not know, remembered for a short while (pure);
- ``subscriber.py``: the AMQP side (the topic queue, the reconnect hook, the log adapter).
"""

from __future__ import annotations

from services.gateway.relay.event_relay import EventRelay, LogReader, UnknownSimulation
from services.gateway.relay.subscriber import BrokerEventLog, RelaySubscriber

__all__ = ["BrokerEventLog", "EventRelay", "LogReader", "RelaySubscriber", "UnknownSimulation"]
