"""Broker names of the contract (INTERFACE.md): exchanges, queues, routing keys."""

from __future__ import annotations

__all__ = [
    "ACTIVITY_EVENTS",
    "ACTIVITY_LOG_STREAM",
    "ALL_SIMULATION_EVENTS",
    "CONTROL_EXCHANGE",
    "CONTROL_LOG_STREAM",
    "DEAD_LETTER_QUEUE",
    "EVENTS_EXCHANGE",
    "EVENT_LOG_STREAM",
    "FINGERPRINT_HEADER",
    "IDEMPOTENCY_KEY_HEADER",
    "JUDGED_EVENTS",
    "JUDGE_BINDINGS",
    "JUDGE_QUEUE",
    "KEYED_HEADER",
    "KEYED_VALUE",
    "OWNER_HEADER",
    "OWNER_SECRET_STREAM",
    "QUEUED_EVENTS",
    "REQUESTS_EXCHANGE",
    "REQUEST_LOG_BINDINGS",
    "REQUEST_LOG_EXCHANGE",
    "REQUEST_LOG_STREAM",
    "REQUEST_ROUTING_KEY",
    "SIMULATIONS_QUEUE",
    "SUGGESTIONS_QUEUE",
    "SUGGESTION_TTL_MS",
    "SUITES_QUEUE",
    "SUITE_CANCEL_ROUTING_KEY",
    "SUITE_CONDUCTOR_BINDINGS",
    "SUITE_LOG_STREAM",
    "cancel_routing_key",
    "command_routing_key",
    "event_routing_key",
    "gateway_relay_queue",
    "simulation_id_from_routing_key",
    "suite_routing_key",
]

REQUESTS_EXCHANGE = "convsim.requests"
"""Direct exchange the gateway publishes simulation requests to."""

REQUEST_ROUTING_KEY = "simulation.requested"

SIMULATIONS_QUEUE = "convsim.simulations"
"""Durable quorum queue the orchestrators consume requests from."""

SUGGESTIONS_QUEUE = "convsim.suggestions"
"""Queue of suggestion requests (contracts/suggestions.py), declared by the orchestrators:
classic, transient, its messages expire after SUGGESTION_TTL_MS; answered by direct reply-to."""

SUGGESTION_TTL_MS = 60_000

DEAD_LETTER_QUEUE = "convsim.simulations.dead"
"""Where requests that can never be processed end up."""

REQUEST_LOG_STREAM = "convsim.requests.log"
"""Stream queue fed by REQUEST_LOG_EXCHANGE: every request accepted with an idempotency key,
in order, kept two days (the keys are looked up in it)."""

REQUEST_LOG_EXCHANGE = "convsim.requests.keyed"
"""Headers exchange (internal) bound to EVENTS_EXCHANGE with REQUEST_LOG_BINDINGS; the request
log is bound to it with ``request_log_match()`` (contracts.topology), so only the events of
requests with an idempotency key reach the log, and every gateway following it reads keyed
requests only."""

QUEUED_EVENTS = "simulation.*.queued"

REQUEST_LOG_BINDINGS = (QUEUED_EVENTS, "simulation.*.started")
"""What the request log keeps of the keyed requests: ``queued`` (the gateway's), and
``started``, which repeats the idempotency headers of its request, so a key is recorded even
when ``queued`` was never published (a gateway crash between the request's confirm and that
publish)."""

IDEMPOTENCY_KEY_HEADER = "convsim-idempotency-key"
"""Header of a request message, of its ``queued`` and of its ``started``: the idempotency key
it was accepted with (per API key: ``<owner>:<key>``)."""

FINGERPRINT_HEADER = "convsim-request-fingerprint"
"""Next to IDEMPOTENCY_KEY_HEADER: a digest of the body, to tell a replay from a conflict."""

KEYED_HEADER = "convsim-keyed"
"""Header ``KEYED_VALUE`` on the ``queued`` and ``started`` of a request with both idempotency
headers: what the request log's binding matches (a plain value, which a definitions export
and import keep; a match on a header's mere presence comes back as the value "undefined")."""

KEYED_VALUE = "yes"

OWNER_HEADER = "convsim-owner"
"""Header of a request message: the owner recorded in ``queued`` (a digest of the API key)."""

OWNER_SECRET_STREAM = "convsim.gateway.owner-secret"
"""Stream queue whose first message is the owner secret the gateways generated and share, when
CONVSIM_OWNER_SECRET is not set (services/gateway/owner_secret.py)."""

ACTIVITY_LOG_STREAM = "convsim.activity.log"
"""Stream queue bound to EVENTS_EXCHANGE with ACTIVITY_EVENTS: when each simulation began
(``queued``, with its owner) and ended, kept a day. Gateways count each key's active
simulations from it (CONVSIM_MAX_ACTIVE_PER_KEY) without reading every turn."""

ACTIVITY_EVENTS = (
    "simulation.*.queued",
    "simulation.*.started",
    "simulation.*.completed",
    "simulation.*.failed",
    "simulation.*.cancelled",
)

CONTROL_EXCHANGE = "convsim.control"
"""Topic exchange of commands to running simulations (``simulation.<id>.cancel``, ``.message``,
``.close``)."""

CONTROL_LOG_STREAM = "convsim.control.log"
"""Stream queue bound to CONTROL_EXCHANGE with '#': every command, for whichever orchestrator
holds (or will hold) the simulation."""

EVENTS_EXCHANGE = "convsim.events"
"""Topic exchange every simulation event is published to."""

EVENT_LOG_STREAM = "convsim.events.log"
"""Stream queue bound to EVENTS_EXCHANGE with '#': the memory of every event."""

ALL_SIMULATION_EVENTS = "simulation.#"
"""Binding key matching every event of every simulation."""


def gateway_relay_queue(host: str, pid: int) -> str:
    """A gateway's own exclusive queue, bound with ``simulation.#``:
    ``convsim.gateway.<host>.<pid>``."""
    return f"convsim.gateway.{host}.{pid}"


def event_routing_key(simulation_id: str, event_type: str) -> str:
    """Routing key of one event: ``simulation.<simulation_id>.<type>``."""
    return f"simulation.{simulation_id}.{event_type}"


def command_routing_key(simulation_id: str, command: str) -> str:
    """Routing key of a command (``cancel``, ``message``, ``close``) on CONTROL_EXCHANGE."""
    return f"simulation.{simulation_id}.{command}"


def cancel_routing_key(simulation_id: str) -> str:
    """Routing key of a cancel command on CONTROL_EXCHANGE."""
    return command_routing_key(simulation_id, "cancel")


def simulation_id_from_routing_key(routing_key: str) -> str | None:
    """The simulation id inside an event routing key, or None for any other key."""
    parts = routing_key.split(".")
    if len(parts) != 3 or parts[0] != "simulation":
        return None
    return parts[1]


JUDGE_QUEUE = "convsim.judge"
"""Durable quorum queue of the judge (python -m services.judge), bound to EVENTS_EXCHANGE with
JUDGE_BINDINGS: every simulation that ended with a transcript to judge."""

JUDGE_BINDINGS = ("simulation.*.completed", "simulation.*.failed")

JUDGED_EVENTS = "simulation.*.judged"
"""The judge's verdicts (contracts/judgement.py): routing key ``simulation.<id>.judged``."""

SUITE_LOG_STREAM = "convsim.suites.log"
"""Stream queue bound to EVENTS_EXCHANGE with ``suite.#``: every suite event (contracts/
suites.py), the memory of every suite."""

SUITES_QUEUE = "convsim.suites"
"""Quorum queue with a single active consumer: the suite conductor's inbox. Bound to
EVENTS_EXCHANGE with SUITE_CONDUCTOR_BINDINGS and to REQUESTS_EXCHANGE with
SUITE_CANCEL_ROUTING_KEY."""

SUITE_CONDUCTOR_BINDINGS = (
    "suite.*.queued",
    "simulation.*.completed",
    "simulation.*.failed",
    "simulation.*.cancelled",
    JUDGED_EVENTS,
)

SUITE_CANCEL_ROUTING_KEY = "suite.cancel"
"""DELETE /v1/suites/{id}: a SuiteCancelCommand on REQUESTS_EXCHANGE, to SUITES_QUEUE."""


def suite_routing_key(suite_id: str, event_type: str) -> str:
    """Routing key of a suite event: ``suite.<suite_id>.<type>``."""
    return f"suite.{suite_id}.{event_type}"
