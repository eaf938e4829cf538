"""Several nodes of one RabbitMQ cluster behind ``CONVSIM_AMQP_URL``: the list, the node a
process starts at, and a robust connection that moves to the next node when its own goes away.

``CONVSIM_AMQP_URL`` is one URL (exactly as before: aio-pika's own robust connection) or a
comma-separated list of the cluster's nodes, all with the same credentials and vhost. A process
starts at entry ``pid % len(list)`` and goes on in list order, wrapping: gateways and
orchestrators spread over the nodes instead of all sitting on the first one.

aio-pika (10.2.1) has no multi-host connection. Its RobustConnection reconnects in a private
loop that, at the start of every attempt, sets ``self.transport = None`` and then connects to
``self.url``. :class:`FailoverConnection` hooks that assignment to point ``url`` at the next node,
so a lost connection or a failed attempt is followed by an attempt on the next node.
tests/unit/test_broker_nodes.py pins this (and the aio-pika and FastStream versions).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import aio_pika
from aio_pika.abc import AbstractRobustConnection, TimeoutType, UnderlayConnection
from yarl import URL

from services.common.naming import with_connection_name

__all__ = [
    "RECONNECT_INTERVAL_S",
    "FailoverConnection",
    "NoBrokerNode",
    "connect_to_nodes",
    "connection_class",
    "named_nodes",
    "node_address",
    "parse_amqp_urls",
    "start_order",
]

logger = logging.getLogger(__name__)

SETTING = "CONVSIM_AMQP_URL"
RECONNECT_INTERVAL_S = 1
"""Pause between two attempts of a node list: a move to a live node takes about a second."""

_PASSWORD = re.compile(r"(//[^/@:]*:).*@")
"""The password of an entry as given: to the last ``@`` (masking too much beats showing it)."""


class NoBrokerNode(ConnectionError):
    """No node of the list took a connection (each was tried once)."""


def parse_amqp_urls(value: str) -> tuple[URL, ...]:
    """The nodes of ``CONVSIM_AMQP_URL`` (one URL or a comma-separated list); a ``ValueError``
    naming the setting and the bad entry, never its password, when one is not usable."""
    entries = [entry.strip() for entry in value.split(",")]
    nodes: list[URL] = []
    for position, entry in enumerate(entries, start=1):
        shown = _PASSWORD.sub(r"\1******@", entry) if entry else "(empty)"
        where = f"{SETTING} entry {position} of {len(entries)} ({shown})"
        try:
            url = URL(entry)
            host, _ = url.host, url.port
        except (ValueError, TypeError):
            raise ValueError(f"{where} is not a URL") from None
        if url.scheme not in ("amqp", "amqps") or not host:
            raise ValueError(f"{where} is not an amqp:// or amqps:// URL with a host")
        if nodes and _cluster_identity(url) != _cluster_identity(nodes[0]):
            raise ValueError(
                f"{where} differs from entry 1 in its user, password or vhost: the entries "
                "are nodes of one cluster"
            )
        nodes.append(url)
    return tuple(nodes)


def _cluster_identity(url: URL) -> tuple[str | None, str | None, str]:
    return url.user, url.password, url.path[1:] or "/"


def start_order(nodes: Sequence[URL], pid: int, first: int | None = None) -> tuple[URL, ...]:
    """The nodes in the order a process tries them: from entry ``first`` (1-based) when given,
    else from entry ``pid % len``; wrapping."""
    start = (first - 1 if first is not None else pid) % len(nodes)
    return (*nodes[start:], *nodes[:start])


def named_nodes(
    amqp_url: str, service: str, *, heartbeat_s: int | None = None, first: int | None = None
) -> tuple[URL, ...]:
    """This process's nodes in its order (from entry ``first``, 1-based, when given), each URL
    with the connection name (and heartbeat)."""
    return tuple(
        URL(with_connection_name(str(node), service, heartbeat_s=heartbeat_s))
        for node in start_order(parse_amqp_urls(amqp_url), os.getpid(), first)
    )


def node_address(url: URL) -> str:
    """``host:port`` of a node, for logs (never the credentials)."""
    port = url.port or (5671 if url.scheme == "amqps" else 5672)
    return f"{url.host}:{port}"


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over the nodes in ``NODES``: every attempt goes to the node after
    the previous attempt's. The first connect tries each node once before it fails.

    Made for a node list by :func:`connection_class` (``connect_robust`` builds the connection
    from a class and a single URL, which here only carries the query every node shares)."""

    NODES: ClassVar[tuple[URL, ...]] = ()

    def __init__(
        self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        self._nodes = self.NODES or (URL(url),)
        self._attempts = 0
        self._node: URL | None = None
        self._connected_node: URL | None = None
        self._ever_connected = False
        self._exhausted = asyncio.Event()
        self._underlay: UnderlayConnection | None = None
        # Our own pace and our own initial round (each node once), whatever a caller passes.
        kwargs["reconnect_interval"] = RECONNECT_INTERVAL_S
        kwargs["fail_fast"] = False
        super().__init__(self._nodes[0], loop=loop, **kwargs)

    # aio-pika's reconnect loop starts every attempt with `self.transport = None`, then
    # connects to `self.url`: the hook that picks the node of the attempt.
    @property
    def transport(self) -> UnderlayConnection | None:
        return self._underlay

    @transport.setter
    def transport(self, value: UnderlayConnection | None) -> None:
        self._underlay = value
        if value is None and self._attempting():
            self._next_node()

    def _attempting(self) -> bool:
        # False in Connection.__init__ (attributes not set yet) and while closing.
        return hasattr(self, "_close_in_progress") and not (
            self._close_in_progress or self._close_called
        )

    def _next_node(self) -> None:
        node = self._nodes[self._attempts % len(self._nodes)]
        self._attempts += 1
        if not self._ever_connected and self._attempts > len(self._nodes):
            self._exhausted.set()
        if self._node is not None and node != self._node:
            # After a loss, say where it goes; retries during an outage only at DEBUG (aio-pika
            # warns of each failed attempt already).
            lost = self._node == self._connected_node
            logger.log(
                logging.INFO if lost else logging.DEBUG,
                "broker connection %s: trying node %s",
                _name(node),
                node_address(node),
            )
        self._node = node
        self.url = node

    async def _on_connected(self) -> None:
        await super()._on_connected()
        node, previous = self._node, self._connected_node
        if node is None:
            return
        self._ever_connected = True
        self._connected_node = node
        if previous is None:
            logger.info("broker connection %s: on node %s", _name(node), node_address(node))
        elif previous != node:
            logger.warning(
                "broker connection %s: moved to node %s (from %s)",
                _name(node),
                node_address(node),
                node_address(previous),
            )

    async def connect(self, timeout: TimeoutType = None) -> None:  # noqa: ASYNC109 (aio-pika API)
        if self._ever_connected:
            await super().connect(timeout)
            return
        connecting = asyncio.ensure_future(super().connect(timeout))
        exhausted = asyncio.ensure_future(self._exhausted.wait())
        try:
            await asyncio.wait({connecting, exhausted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exhausted.cancel()
        if connecting.done():
            connecting.result()
            return
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await self.close()
        tried = ", ".join(node_address(node) for node in self._nodes)
        raise NoBrokerNode(f"no node of {SETTING} took a connection (tried {tried})")


def _name(url: URL) -> str:
    return url.query.get("name", "")


def connection_class(nodes: Sequence[URL]) -> type[FailoverConnection]:
    """A :class:`FailoverConnection` over ``nodes`` (in the order to try them), to pass to
    ``aio_pika.connect_robust(connection_class=...)`` together with ``nodes[0]``."""

    class NodeListConnection(FailoverConnection):
        NODES = tuple(nodes)

    return NodeListConnection


async def connect_to_nodes(
    amqp_url: str, service: str, *, heartbeat_s: int | None = None, first: int | None = None
) -> AbstractRobustConnection:
    """A robust connection named for ``service``: aio-pika's own for one URL, a
    :class:`FailoverConnection` starting at this process's node for a list."""
    nodes = named_nodes(amqp_url, service, heartbeat_s=heartbeat_s, first=first)
    if len(nodes) == 1:
        return await aio_pika.connect_robust(nodes[0])
    return await aio_pika.connect_robust(nodes[0], connection_class=connection_class(nodes))
