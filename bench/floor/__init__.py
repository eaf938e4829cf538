"""The floor stack: the least a gateway and an orchestrator must do for the bench's workload,
built from the parts convsim is built from, to tell convsim's own cost from the machine's.

``python -m bench --stack floor`` runs the same workload, driver, fakes, broker and
measurements as ``make bench`` against two minimal services instead of convsim's:

- ``bench.floor.gateway`` (uvicorn, FastAPI, sse-starlette, aio-pika): ``POST /simulate`` with
  ``Accept: text/event-stream``, and for the typical client (``--client typical``)
  ``POST /v1/simulations`` (202 and the id) followed by one
  ``GET /v1/simulations/{id}/events`` that reads the simulation's events from the start (they
  wait in its follower's queue until that one reader comes: no second reader, no
  ``Last-Event-ID``). It validates the body
  (SimulationCreate), publishes the request (persistent, mandatory, confirmed) to the
  contract's quorum queue, makes ``queued`` at once (the first event of the stream) and
  publishes it, and relays every event of the simulations it streams from its own queue bound
  to ``simulation.#``, handing each event's JSON bytes to the client untouched (``seq``
  travels as the AMQP message id, the type in the routing key).
- ``bench.floor.orchestrator`` (aio-pika, httpx over aiohttp for the bot API, the openai SDK
  for the simulated user): consumes the requests and runs each conversation as the fakes
  expect, publishing every event (persistent, mandatory, confirmed) on the topic exchange,
  whose event-log stream is bound as the contract's; acks the request after ``completed``.
  With ``--bot llm`` the bot is an OpenAI-compatible model (the openai SDK, as the user); with
  ``--limits`` every bot call holds one of ``--cap`` permits on the broker (convsim's permit
  pool: a quorum queue of permit messages, handed on between the calls waiting in one process)
  and a wait past 100 ms is announced with ``waiting``, as the contract asks; turns and
  ``completed`` carry the LLM calls' ``usage``.
- ``bench.floor.judge`` (with ``--judge``; aio-pika and the openai SDK): learns each
  simulation's criteria from its ``queued`` event, grades each ``completed`` one with one LLM
  call and publishes ``judged``, both through the contract's ``convsim.judge`` quorum queue.

``python -m bench --stack floor-gateway`` puts convsim's orchestrators behind the floor's
gateway (``--join-topology``: it declares nothing, it joins the queues and exchanges convsim's
orchestrators declared), so a gap between convsim and the floor can be told apart: the gateway's
share, and the rest.

What the floor leaves out is everything else convsim does: the simulations' state in the
gateway (status, transcripts, resuming any simulation from the log), access checks, limits,
metrics, logs, idempotency, cancellation, retries, permits, usage and cost accounting, the
activity and request logs, the write fence, delivery policies. So its numbers bound from
below what any implementation of the contract with these parts costs on this machine: where
the floor misses a target, convsim cannot meet it here.
"""
