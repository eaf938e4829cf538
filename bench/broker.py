"""The broker of a benchmark run: started if none answers, one fresh vhost per run."""

from __future__ import annotations

import subprocess
import uuid
from urllib.parse import quote

import httpx

from bench.processes import REPO

__all__ = ["BenchVhost"]

MANAGEMENT = "http://127.0.0.1:15672"
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"


class BenchVhost:
    def __init__(self) -> None:
        self.name = f"convsim-bench-{uuid.uuid4().hex[:8]}"
        self._http = httpx.Client(base_url=MANAGEMENT, auth=("guest", "guest"), timeout=30)

    @property
    def amqp_url(self) -> str:
        return f"{AMQP_BASE}/{quote(self.name, safe='')}"

    def __enter__(self) -> BenchVhost:
        subprocess.run([str(REPO / "scripts" / "broker.sh"), "ensure"], check=True)
        vhost = quote(self.name, safe="")
        self._http.put(f"/api/vhosts/{vhost}").raise_for_status()
        self._http.put(
            f"/api/permissions/{vhost}/guest",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.delete(f"/api/vhosts/{quote(self.name, safe='')}")
        self._http.close()
