"""The integration stack: a real RabbitMQ (own vhost), fakes of the bot API and of OpenAI on
loopback, and the orchestrator and gateway as real processes."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractConnection

from contracts.names import SIMULATIONS_QUEUE
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.openai_api import FAULT_MODELS, FakeOpenAI
from tests.fakes.server import free_port, serve_in_thread
from tests.integration.broker_admin import BrokerAdmin
from tests.integration.cluster_stack import ClusterStack, cluster_stack
from tests.integration.local_cluster import LocalCluster, local_cluster
from tests.integration.processes import (
    ServiceProcess,
    start_gateway,
    start_orchestrator,
    wait_until,
)
from tests.integration.rabbitmqctl import NODE, can_control_broker

pytestmark = pytest.mark.integration

OPENAI_TEST_KEY = "sk-test-not-a-real-key-3f9a"
API_KEY_ALPHA = "ck-alpha-4c1f9e2b7a605d83"
API_KEY_BETA = "ck-beta-91d0e6f3a2c84b57e0"
OWNER_TEST_SECRET = "os-8d2e61c0f4b9a7e35c1d-owner-key-7"  # its start is no broker name
AMQP_TEST_PASSWORD = "amqp-pw-5f1e9c3b7a2d40e8"
SECRETS = (OPENAI_TEST_KEY, API_KEY_ALPHA, API_KEY_BETA, OWNER_TEST_SECRET, AMQP_TEST_PASSWORD)
"""Every secret the suite hands to a service: none may appear in any log (test_secrets.py)."""


@dataclass
class Broker:
    admin: BrokerAdmin
    vhost: str
    amqp_url: str


@pytest.fixture
def fresh_vhost() -> Iterator[Broker]:
    """A vhost of its own on the single broker, for one test of the topology."""
    admin = BrokerAdmin()
    name = f"convsim-topology-{uuid.uuid4().hex[:8]}"
    amqp_url = admin.create_vhost(name)
    try:
        yield Broker(admin, name, amqp_url)
    finally:
        admin.delete_vhost(name)
        admin.close()


@pytest.fixture
async def vhost_connection(fresh_vhost: Broker) -> AsyncIterator[AbstractConnection]:
    """A plain connection (a channel the broker closes stays closed)."""
    connection = await aio_pika.connect(fresh_vhost.amqp_url)
    try:
        yield connection
    finally:
        await connection.close()


@dataclass
class Stack:
    broker: Broker
    bot: FakeBotApi
    llm: FakeOpenAI
    env: dict[str, str]
    gateway_url: str
    logs: Path
    start_gateway: Callable[[], tuple[ServiceProcess, str]]


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    admin = BrokerAdmin()
    vhost = f"convsim-test-{uuid.uuid4().hex[:8]}"
    try:
        amqp_url = admin.create_vhost(vhost)
    except Exception as exc:  # pragma: no cover - environment problem, said clearly
        pytest.fail(f"no RabbitMQ management API at {admin.base_url} (run `make broker`): {exc}")
    yield Broker(admin, vhost, amqp_url)
    admin.delete_vhost(vhost)
    admin.close()


@pytest.fixture(scope="session")
def fake_bot() -> Iterator[tuple[FakeBotApi, str]]:
    bot = FakeBotApi()
    with serve_in_thread(bot.app()) as (url, loop):
        bot.bind(loop)
        yield bot, url


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[tuple[FakeOpenAI, str]]:
    llm = FakeOpenAI()
    with serve_in_thread(llm.app()) as (url, _):
        yield llm, url


def service_env(amqp_url: str, bot_url: str, llm_url: str) -> dict[str, str]:
    """The environment of the services under test: the broker, the fakes, short timings."""
    return {
        "CONVSIM_AMQP_URL": amqp_url,
        "CONVSIM_BOT_API_URL": bot_url,
        "OPENAI_API_KEY": OPENAI_TEST_KEY,
        "OPENAI_BASE_URL": f"{llm_url}/v1",
        "CONVSIM_AMQP_HEARTBEAT_S": "2",
        "CONVSIM_GRACEFUL_TIMEOUT_S": "3",
        "CONVSIM_METRICS_PORT": "0",
        "CONVSIM_JUDGE_METRICS_PORT": "0",
        "CONVSIM_OWNER_SECRET": OWNER_TEST_SECRET,
        "CONVSIM_ALLOWED_LLM_MODELS": ",".join(("gpt-4o-mini", *FAULT_MODELS)),
    }


@pytest.fixture(scope="session")
def stack(
    broker: Broker,
    fake_bot: tuple[FakeBotApi, str],
    fake_llm: tuple[FakeOpenAI, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("logs")
    env = service_env(broker.amqp_url, fake_bot[1], fake_llm[1])
    processes: list[ServiceProcess] = []

    def start_session_gateway() -> tuple[ServiceProcess, str]:
        port = free_port()
        return start_gateway(f"gateway-{port}", env, logs, processes, port=port, timeout_s=30)

    try:
        orchestrator = ServiceProcess("orchestrator", "services.orchestrator", env, logs)
        processes.append(orchestrator)
        wait_until(
            lambda: (
                broker.admin.queue(broker.vhost, SIMULATIONS_QUEUE).get("consumers", 0) >= 1
                if _queue_exists(broker)
                else False
            ),
            timeout_s=30,
            what="the orchestrator to consume the request queue",
        )
        _, gateway_url = start_session_gateway()
        yield Stack(broker, fake_bot[0], fake_llm[0], env, gateway_url, logs, start_session_gateway)
    finally:
        for process in reversed(processes):
            process.stop()


@dataclass
class IsolatedStack:
    """A vhost of its own, with the processes a fault test starts, signals and kills."""

    broker: Broker
    bot: FakeBotApi
    env: dict[str, str]
    logs: Path
    processes: list[ServiceProcess]

    def consumers(self) -> int:
        if not _queue_exists(self.broker):
            return 0
        count: int = self.broker.admin.queue(self.broker.vhost, SIMULATIONS_QUEUE).get(
            "consumers", 0
        )
        return count

    def start_orchestrator(self, name: str, **env: str) -> ServiceProcess:
        return start_orchestrator(
            name, {**self.env, **env}, self.logs, self.processes, timeout_s=30
        )

    def start_gateway(
        self, name: str = "gateway", *, port: int | None = None, **env: str
    ) -> tuple[ServiceProcess, str]:
        return start_gateway(
            name,
            {**self.env, **env},
            self.logs,
            self.processes,
            port=port or free_port(),
            timeout_s=30,
        )


@contextmanager
def isolated_stack(stack: Stack, logs_parent: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    """A vhost of its own; the processes started in it are killed and the vhost deleted after."""
    vhost = f"convsim-fault-{uuid.uuid4().hex[:8]}"
    amqp_url = stack.broker.admin.create_vhost(vhost)
    env = {**stack.env, "CONVSIM_AMQP_URL": amqp_url}
    isolated = IsolatedStack(
        Broker(stack.broker.admin, vhost, amqp_url),
        stack.bot,
        env,
        logs_parent.mktemp(vhost),
        [],
    )
    try:
        yield isolated
    finally:
        for process in reversed(isolated.processes):
            process.stop(signal.SIGKILL)
        stack.broker.admin.delete_vhost(vhost)


@pytest.fixture
def isolated(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedStack]:
    with isolated_stack(stack, tmp_path_factory) as fresh:
        yield fresh


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the session's gateway."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def local_broker() -> None:
    """Tests that reconfigure or restart the broker node need rabbitmqctl access to it."""
    if not can_control_broker():
        pytest.skip(f"rabbitmqctl cannot reach the broker node {NODE} from here")


def _queue_exists(broker: Broker) -> bool:
    try:
        broker.admin.queue(broker.vhost, SIMULATIONS_QUEUE)
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The local three-node cluster, started once for every cluster test (they run together,
    see tests/conftest.py) and always torn down."""
    with local_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def clustered(
    cluster: LocalCluster,
    fake_bot: tuple[FakeBotApi, str],
    fake_llm: tuple[FakeOpenAI, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterStack]:
    """convsim on the cluster: a vhost of its own, processes the test starts, nodes restored."""
    env = service_env("", fake_bot[1], fake_llm[1])
    with cluster_stack(cluster, fake_bot[0], env, tmp_path_factory.mktemp("cluster-logs")) as fresh:
        yield fresh
