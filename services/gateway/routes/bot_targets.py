"""``GET /v1/bot-targets``: the names and kinds of the bots a request may pick.

What a client (the web page) needs to offer the right fields: a ``robot_ai_lesson`` bot needs
``bot_id``, an ``openai_chat`` bot needs ``bot_prompt``. Never a URL, a model, a header or the
name of an environment variable: those stay in the configuration.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from services.common.bot_targets import BotTargetKind, BotTargetName
from services.gateway.dependencies import SettingsDep
from services.gateway.schemas import COMMON_RESPONSES

__all__ = ["BotTargetPublic", "router"]

router = APIRouter(prefix="/v1/bot-targets", tags=["bot targets"], responses=COMMON_RESPONSES)


class BotTargetPublic(BaseModel):
    """A bot target as a client sees it: its name and its kind, nothing else."""

    model_config = ConfigDict(extra="forbid")

    name: BotTargetName
    kind: BotTargetKind


@router.get(
    "",
    response_model=list[BotTargetPublic],
    summary="The bot targets a request may name in bot_target (names and kinds only)",
)
async def list_bot_targets(settings: SettingsDep) -> list[BotTargetPublic]:
    targets = settings.targets()
    return [BotTargetPublic(name=name, kind=targets[name].kind) for name in sorted(targets)]
