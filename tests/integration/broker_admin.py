"""The RabbitMQ management API, for test isolation (one vhost per test session) and checks."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["BrokerAdmin"]


class BrokerAdmin:
    def __init__(self, base_url: str | None = None, amqp_base: str | None = None) -> None:
        """The management API at ``base_url`` (default: the single broker's, or
        CONVSIM_TEST_MANAGEMENT_URL); vhost URLs start with ``amqp_base``."""
        self.base_url = base_url or os.environ.get(
            "CONVSIM_TEST_MANAGEMENT_URL", "http://127.0.0.1:15672"
        )
        self.amqp_base = amqp_base or os.environ.get(
            "CONVSIM_TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672"
        )
        user = os.environ.get("CONVSIM_TEST_BROKER_USER", "guest")
        password = os.environ.get("CONVSIM_TEST_BROKER_PASSWORD", "guest")
        self.user = user
        self._http = httpx.Client(base_url=self.base_url, auth=(user, password), timeout=10)

    def create_vhost(self, name: str) -> str:
        """Create a vhost, let the user in, and return its AMQP URL."""
        vhost = quote(name, safe="")
        self._http.put(f"/api/vhosts/{vhost}").raise_for_status()
        self._http.put(
            f"/api/permissions/{vhost}/{self.user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        return f"{self.amqp_base}/{vhost}"

    def delete_vhost(self, name: str) -> None:
        self._http.delete(f"/api/vhosts/{quote(name, safe='')}")

    def create_user(self, name: str, password: str, vhost: str | None = None) -> str:
        """A broker user with a password (and every permission on ``vhost`` when given); its
        AMQP URL for ``vhost``."""
        self._http.put(
            f"/api/users/{quote(name, safe='')}", json={"password": password, "tags": ""}
        ).raise_for_status()
        if vhost is not None:
            self.set_permissions(vhost, name)
        host = self.amqp_base.rsplit("@", 1)[-1]
        credentials = f"{quote(name, safe='')}:{quote(password, safe='')}"
        return f"amqp://{credentials}@{host}/{quote(vhost or '', safe='')}"

    def delete_user(self, name: str) -> None:
        self._http.delete(f"/api/users/{quote(name, safe='')}")

    def set_permissions(
        self, vhost: str, user: str, *, configure: str = ".*", write: str = ".*", read: str = ".*"
    ) -> None:
        """What ``user`` may declare, publish to and consume from in ``vhost`` (regexes)."""
        self._http.put(
            f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
            json={"configure": configure, "write": write, "read": read},
        ).raise_for_status()

    def queue(self, vhost: str, name: str) -> dict[str, Any]:
        response = self._http.get(f"/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def binding_sources(self, vhost: str, queue: str) -> list[str]:
        """The exchange of each of the queue's bindings, the default exchange's left out."""
        path = f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/bindings"
        response = self._http.get(path)
        response.raise_for_status()
        return [binding["source"] for binding in response.json() if binding["source"]]

    def definitions(self, vhost: str) -> dict[str, Any]:
        """The vhost's definitions (queues, exchanges, bindings...), as an export has them."""
        response = self._http.get(f"/api/definitions/{quote(vhost, safe='')}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def load_definitions(self, vhost: str, definitions: dict[str, Any]) -> None:
        """Import definitions into a vhost, as a restore from an export does."""
        path = f"/api/definitions/{quote(vhost, safe='')}"
        self._http.post(path, json=definitions).raise_for_status()

    def bind(self, vhost: str, exchange: str, queue: str, routing_key: str) -> None:
        self._http.post(
            f"/api/bindings/{quote(vhost, safe='')}/e/{exchange}/q/{queue}",
            json={"routing_key": routing_key},
        ).raise_for_status()

    def unbind(self, vhost: str, exchange: str, queue: str, routing_key: str) -> None:
        path = f"/api/bindings/{quote(vhost, safe='')}/e/{exchange}/q/{queue}/{routing_key}"
        self._http.delete(path).raise_for_status()

    def connections(self, vhost: str, service: str, pid: int | None = None) -> list[str]:
        """The broker's names of a service's connections in a vhost (named by
        ``services.common.naming.connection_name``), of one process when ``pid`` is given."""
        response = self._http.get(f"/api/vhosts/{quote(vhost, safe='')}/connections")
        response.raise_for_status()
        prefix = f"convsim-{service}@"
        return [
            connection["name"]
            for connection in response.json()
            if str(connection.get("client_properties", {}).get("connection_name", "")).startswith(
                prefix
            )
            and (
                pid is None
                or connection["client_properties"]["connection_name"].endswith(f":{pid}")
            )
        ]

    def force_close(self, name: str) -> None:
        """Close one connection as an operator (or a network fault) would (CONNECTION_FORCED)."""
        self._http.delete(
            f"/api/connections/{quote(name, safe='')}", headers={"X-Reason": "closed by a test"}
        ).raise_for_status()

    def close(self) -> None:
        self._http.close()
