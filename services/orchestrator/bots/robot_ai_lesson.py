"""The robot-ai-lesson bot API: initConversation, then one webhook call per user message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from contracts.requests import SimulationRequest
from services.orchestrator.bots.transport import post_json
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.ports import TranscriptLine

__all__ = ["INIT_PATH", "WEBHOOK_PATH", "RobotAiLessonBot"]

INIT_PATH = "/robot-ai-lesson/api/v1/bot/initConversation"
WEBHOOK_PATH = "/robot-ai-lesson/api/v1/bot/webhook"


class RobotAiLessonBot:
    """The two calls of the bot API contract at one base URL (from configuration, never from a
    request); every way they can fail is a SimulationFailure, marked retryable or not."""

    opens_remotely = True  # initConversation

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, max_reply_bytes: int) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._max_reply_bytes = max_reply_bytes

    async def open(self, request: SimulationRequest) -> None:
        if request.bot_id is None:
            raise SimulationFailure(
                "bot_rejected", "a robot_ai_lesson target needs the request's bot_id"
            )
        await self.init_conversation(
            request.bot_id, request.simulation_id, dict(request.input_slots)
        )

    async def reply(
        self, request: SimulationRequest, message: str, earlier: Sequence[TranscriptLine]
    ) -> list[str]:
        # The bot keeps the conversation itself, by the simulation id.
        return [await self.send_message(request.simulation_id, message)]

    async def init_conversation(
        self, bot_id: int, conversation_id: str, input_slots: dict[str, Any]
    ) -> None:
        body = {"bot_id": bot_id, "conversation_id": conversation_id, "input_slots": input_slots}
        await self._post("initConversation", INIT_PATH, body)

    async def send_message(self, conversation_id: str, message: str) -> str:
        """Send the user's message; return the bot's reply (``data.message``)."""
        payload = await self._post(
            "webhook", WEBHOOK_PATH, {"conversation_id": conversation_id, "message": message}
        )
        data = payload.get("data")
        reply = data.get("message") if isinstance(data, dict) else None
        if not isinstance(reply, str) or not reply.strip():
            raise SimulationFailure("bot_empty_reply", "webhook answered without data.message")
        return reply

    async def _post(self, call: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = await post_json(
            self._http, call, self._base_url + path, body, max_reply_bytes=self._max_reply_bytes
        )
        if not isinstance(payload, dict):
            raise SimulationFailure(
                "bot_bad_response", f"{call} answered JSON that is not an object"
            )
        if payload.get("status") != 0:
            raise SimulationFailure(
                "bot_rejected",
                f"{call} answered status {payload.get('status')!r}: "
                f"{str(payload.get('msg'))[:200]}",
            )
        return payload
