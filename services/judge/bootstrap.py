"""The judge's composition root: every collaborator, built once from the settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from aio_pika.abc import AbstractRobustConnection
from prometheus_client import CollectorRegistry

from services.common.event_log import EventLogReader
from services.common.log_connection import open_log_connection
from services.common.metrics_server import serve_metrics
from services.common.openai_client import build_openai_client
from services.judge.case import CriteriaJudge
from services.judge.followed_log import FollowedLog
from services.judge.judging import Judging
from services.judge.llm_judge import LLMJudge
from services.judge.memory import JudgeMemory
from services.judge.metrics import JudgeMetrics
from services.judge.offline_judge import OfflineJudge
from services.judge.settings import JudgeSettings

__all__ = ["Judge", "bootstrap", "criteria_judge"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judge:
    judging: Judging
    metrics: JudgeMetrics


@asynccontextmanager
async def bootstrap(settings: JudgeSettings) -> AsyncIterator[Judge]:
    """Connect, declare the topology, open the judge LLM's client; close all of it after."""
    async with AsyncExitStack() as stack:
        connection = await open_log_connection(
            stack, settings, "judge-log", heartbeat_s=settings.amqp_heartbeat_s
        )
        metrics = JudgeMetrics(CollectorRegistry())
        await stack.enter_async_context(
            serve_metrics(metrics.registry, settings.metrics_host, settings.judge_metrics_port)
        )
        judge = await criteria_judge(stack, settings)
        log = await _followed_log(stack, connection, settings, metrics)
        judging = Judging(
            log=log,
            judge=judge,
            prices=settings.prices,
            metrics=metrics,
        )
        yield Judge(judging=judging, metrics=metrics)


async def _followed_log(
    stack: AsyncExitStack,
    connection: AbstractRobustConnection,
    settings: JudgeSettings,
    metrics: JudgeMetrics,
) -> FollowedLog:
    """The event log as the judge sees it: followed from now less the look-back."""
    memory = JudgeMemory(
        max_simulations=settings.judge_memory_simulations,
        max_bytes=settings.judge_memory_mb * 1_000_000,
    )
    metrics.memory_simulations.set_function(lambda: memory.simulations)
    metrics.memory_bytes.set_function(lambda: memory.size)
    log = FollowedLog(
        connection,
        memory=memory,
        reader=EventLogReader(
            connection,
            timeout_s=settings.log_read_timeout_s,
            prefetch=settings.log_read_prefetch,
            on_message=metrics.log_messages_read.labels(reader="lookup").inc,
        ),
        metrics=metrics,
        look_back=timedelta(seconds=settings.judge_lookback_s),
        sync_timeout_s=settings.judge_follow_timeout_s,
        prefetch=settings.log_read_prefetch,
    )
    await log.start()
    stack.push_async_callback(log.stop)
    return log


async def criteria_judge(stack: AsyncExitStack, settings: JudgeSettings) -> CriteriaJudge:
    """The judge LLM (its client closed with ``stack``) or the offline judge, as set."""
    if settings.judge_kind == "llm" and settings.openai_api_key is not None:
        client = build_openai_client(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            read_timeout_s=settings.judge_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_connections=settings.judge_concurrency + 10,
        )
        stack.push_async_callback(client.close)
        logger.info("judge: llm (%s)", settings.judge_model)
        return LLMJudge(client, model=settings.judge_model, attempts=settings.judge_llm_attempts)
    logger.info("judge: offline (criteria are left unjudged)")
    return OfflineJudge()
