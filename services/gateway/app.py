"""The gateway's FastAPI app and its lifespan, which wires the real parts together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.event_log import EventLogReader
from services.gateway.access import Access, AccessMiddleware
from services.gateway.active import ActiveSimulations
from services.gateway.broker import BrokerUnavailable, GatewayBroker
from services.gateway.cancellation import AlreadyFinished
from services.gateway.conversing import PendingMessages, Unanswered
from services.gateway.idempotency import IdempotencyIndex
from services.gateway.limits import BodySizeLimit
from services.gateway.metrics import GatewayMetrics
from services.gateway.owner_secret import shared_owner_secret
from services.gateway.relay import (
    BrokerEventLog,
    EventRelay,
    RelaySubscriber,
    UnknownSimulation,
)
from services.gateway.routes import (
    bot_targets,
    conversations,
    health,
    original_api,
    original_conversations,
    page,
    simulate,
    simulations,
    suites,
)
from services.gateway.settings import GatewaySettings
from services.gateway.submission import IdempotencyConflict, IdempotencyKeyInUse
from services.gateway.suites import BudgetWatch, SuiteBook, SuiteConductor, check_sender

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5


def create_app(
    settings: GatewaySettings | None = None,
    *,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The gateway; ``on_ready`` is awaited once everything is wired, before it serves."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = GatewayBroker(
            settings.amqp_url,
            event_log_max_age=settings.event_log_max_age,
            max_queued=settings.max_queued_simulations,
            replication=settings.replication(),
            publish_timeout_s=settings.publish_timeout_s,
            first_node=settings.amqp_first_node,
        )
        await broker.open()
        try:
            if access.needs_owner_secret:
                access.use_owner_secret(
                    await shared_owner_secret(
                        broker.connection,
                        settings.replication(),
                        timeout_s=settings.log_read_timeout_s,
                    )
                )
            log = EventLogReader(
                broker.connection,
                timeout_s=settings.log_read_timeout_s,
                prefetch=settings.log_read_prefetch,
                first_event_within=timedelta(seconds=settings.log_scan_window_s),
            )
            relay = EventRelay(
                BrokerEventLog(log),
                max_cached=settings.max_cached_simulations,
                max_cached_bytes=settings.max_cached_bytes,
                max_concurrent_reads=settings.max_concurrent_log_reads,
                read_wait_s=settings.log_read_timeout_s,
                miss_ttl_s=settings.unknown_id_ttl_s,
            )
            await RelaySubscriber(relay, app.state.metrics).start(broker.connection)
            idempotency = IdempotencyIndex(
                broker.connection,
                window=timedelta(seconds=settings.idempotency_window_s),
                sync_timeout_s=settings.log_read_timeout_s,
            )
            await idempotency.start()
            active = ActiveSimulations(
                broker.connection,
                window=timedelta(seconds=settings.active_window_s),
                sync_timeout_s=settings.log_read_timeout_s,
            )
            await active.start()
            suite_book = SuiteBook(broker.connection, sync_timeout_s=settings.log_read_timeout_s)
            await suite_book.start()
            app.state.suite_book = suite_book
            budget_watch = BudgetWatch(suite_book, settings.prices, check_sender(broker))
            relay.observe(budget_watch.observe)
            await SuiteConductor(
                suite_book,
                broker,
                relay,
                settings.prices,
                members_in_flight=settings.suite_members_in_flight,
            ).start(broker.connection, settings.replication())
            app.state.active = active
            app.state.settings = settings
            app.state.broker = broker
            app.state.relay = relay
            app.state.idempotency = idempotency
            if on_ready is not None:
                await on_ready()
            logger.info("gateway ready")
            yield
            await budget_watch.close()
            await suite_book.stop()
            await active.stop()
            await idempotency.stop()
            await relay.close()
        finally:
            await broker.close()

    app = FastAPI(
        title="convsim gateway",
        version="1",
        summary="Simulated conversations against a chatbot, streamed turn by turn.",
        lifespan=lifespan,
    )
    app.state.metrics = GatewayMetrics()
    app.state.pending_messages = PendingMessages()
    app.state.asyncapi = health.load_asyncapi()
    app.state.page_html = page.load_page()
    app.state.access = access = Access(
        settings.api_keys,
        token_ttl_s=settings.stream_token_ttl_s,
        owner_secret=settings.owner_secret,
    )
    # Outermost first: the size limit applies before anything, even to unauthorised callers.
    app.add_middleware(AccessMiddleware, access=access)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(simulate.router)
    app.include_router(simulations.router)
    app.include_router(suites.router)
    app.include_router(bot_targets.router)
    app.include_router(conversations.router)
    app.include_router(health.router)
    app.include_router(original_api.router)
    app.include_router(original_conversations.router)
    app.include_router(page.router)
    app.mount(page.PAGE_ASSETS_PATH, page.page_assets(), name="page-assets")

    @app.exception_handler(UnknownSimulation)
    async def _unknown(_: Request, exc: UnknownSimulation) -> JSONResponse:
        return JSONResponse({"detail": f"no simulation with id {exc}"}, status_code=404)

    @app.exception_handler(suites.UnknownSuite)
    async def _unknown_suite(_: Request, exc: suites.UnknownSuite) -> JSONResponse:
        return JSONResponse({"detail": f"no suite with id {exc}"}, status_code=404)

    @app.exception_handler(AlreadyFinished)
    async def _finished(_: Request, exc: AlreadyFinished) -> JSONResponse:
        return JSONResponse(
            {"detail": f"simulation {exc} has already ended ({exc.state.status})"},
            status_code=409,
        )

    @app.exception_handler(Unanswered)
    async def _unanswered(_: Request, exc: Unanswered) -> JSONResponse:
        return JSONResponse(
            {"detail": f"conversation {exc}: the previous message has no reply yet"},
            status_code=409,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(IdempotencyConflict)
    async def _key_reused(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return JSONResponse(
            {"detail": "this Idempotency-Key was used with another body"}, status_code=409
        )

    @app.exception_handler(IdempotencyKeyInUse)
    async def _key_busy(_: Request, exc: IdempotencyKeyInUse) -> JSONResponse:
        return JSONResponse(
            {"detail": "a request with this Idempotency-Key is in progress; retry"},
            status_code=409,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(BrokerUnavailable)
    async def _unavailable(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        outcome = (
            "it may have been taken all the same: retry with the same Idempotency-Key"
            if exc.maybe_taken
            else "nothing was queued, retry later"
        )
        return JSONResponse(
            {"detail": f"{exc}; {outcome}"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    return app
