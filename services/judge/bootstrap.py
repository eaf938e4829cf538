"""The judge's composition root: every collaborator, built once from the settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from services.common.event_log import EventLogReader
from services.common.log_connection import open_log_connection
from services.common.metrics_server import serve_metrics
from services.common.openai_client import build_openai_client
from services.judge.case import CriteriaJudge
from services.judge.judging import Judging
from services.judge.llm_judge import LLMJudge
from services.judge.metrics import JudgeMetrics
from services.judge.offline_judge import OfflineJudge
from services.judge.settings import JudgeSettings

__all__ = ["Judge", "bootstrap"]

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
        judge = await _criteria_judge(stack, settings)
        judging = Judging(
            log=EventLogReader(
                connection,
                timeout_s=settings.log_read_timeout_s,
                prefetch=settings.log_read_prefetch,
                on_message=metrics.log_messages_read.labels(reader="lookup").inc,
            ),
            judge=judge,
            prices=settings.prices,
            metrics=metrics,
        )
        yield Judge(judging=judging, metrics=metrics)


async def _criteria_judge(stack: AsyncExitStack, settings: JudgeSettings) -> CriteriaJudge:
    if settings.judge_kind == "llm" and settings.openai_api_key is not None:
        client = build_openai_client(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            read_timeout_s=settings.judge_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        stack.push_async_callback(client.close)
        logger.info("judge: llm (%s)", settings.judge_model)
        return LLMJudge(client, model=settings.judge_model, attempts=settings.judge_llm_attempts)
    logger.info("judge: offline (criteria are left unjudged)")
    return OfflineJudge()
