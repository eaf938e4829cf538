"""Builds the bot of every configured target (one adapter each, sharing one pooled client per
kind); the orchestrator's composition root calls it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from services.common.bot_targets import (
    BotTarget,
    BotTargetKind,
    HttpJsonTarget,
    OpenAIChatTarget,
    RobotAiLessonTarget,
)
from services.orchestrator.bots.http_json import HttpJsonBot
from services.orchestrator.bots.openai_chat import OpenAIChatBot
from services.orchestrator.bots.robot_ai_lesson import RobotAiLessonBot
from services.orchestrator.bots.target_bot import TargetBot
from services.orchestrator.ports import BotAdapter, BotPort

__all__ = ["BotDefaults", "build_bots"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class BotDefaults:
    """What an openai_chat target takes from the simulated user's settings when it sets none."""

    openai_base_url: str | None
    llm_model: str
    max_reply_bytes: int


def build_bots(
    targets: Mapping[str, BotTarget],
    *,
    client_for: Callable[[BotTargetKind], httpx.AsyncClient],
    defaults: BotDefaults,
    environ: Mapping[str, str],
) -> dict[str, BotPort]:
    """One BotPort per target name. Secrets are read from ``environ`` by the names the
    configuration gives (api_key_env, headers_env), never from a request."""
    return {
        name: TargetBot(
            _adapter(target, client_for(target.kind), defaults, environ),
            separator=target.separator,
            end_pattern=target.end_pattern,
        )
        for name, target in targets.items()
    }


def _adapter(
    target: BotTarget,
    http: httpx.AsyncClient,
    defaults: BotDefaults,
    environ: Mapping[str, str],
) -> BotAdapter:
    limit = defaults.max_reply_bytes
    match target:
        case RobotAiLessonTarget():
            return RobotAiLessonBot(http, base_url=str(target.url), max_reply_bytes=limit)
        case OpenAIChatTarget():
            base_url = target.base_url or defaults.openai_base_url or DEFAULT_OPENAI_BASE_URL
            return OpenAIChatBot(
                http,
                target,
                base_url=str(base_url),
                model=defaults.llm_model,
                api_key=environ.get(target.api_key_env) if target.api_key_env else None,
                max_reply_bytes=limit,
            )
        case HttpJsonTarget():
            headers = {
                header: environ[variable]
                for header, variable in target.headers_env.items()
                if variable in environ
            }
            return HttpJsonBot(
                http,
                url=str(target.url),
                body=target.body,
                reply_path=target.reply_path,
                headers=headers,
                max_reply_bytes=limit,
            )
