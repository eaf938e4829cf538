"""Suggestions for a conversation a person steers: what the simulated user (LLM or scripted)
would say next with the conversation's persona and goal. Nothing is sent or published."""

from __future__ import annotations

import logging

from contracts.events import ErrorInfo
from contracts.suggestions import SuggestionReply, SuggestionRequest
from services.orchestrator.endings import read_user_message, user_instructions
from services.orchestrator.errors import SimulationFailure
from services.orchestrator.ports import unmetered
from services.orchestrator.user_simulator import UserSimulator

__all__ = ["Suggester"]

logger = logging.getLogger(__name__)


class Suggester:
    def __init__(self, user: UserSimulator, *, stop_phrase: str) -> None:
        self._user = user
        self._stop_phrase = stop_phrase

    async def suggest(self, request: SuggestionRequest) -> SuggestionReply:
        instructions = user_instructions(request.persona, request.goal, self._stop_phrase)
        lines = [(line.role, line.content) for line in request.lines]
        try:
            content, _ = unmetered(await self._user.next_message(instructions, lines, request.llm))
        except SimulationFailure as failure:
            return SuggestionReply(error=failure.to_error_info())
        except Exception as exc:
            logger.exception("suggestion for %s failed", request.simulation_id)
            return SuggestionReply(
                error=ErrorInfo(code="internal", message=f"internal error ({type(exc).__name__})")
            )
        # The stop phrase is the simulated user's way to end a run: a person ends with DELETE.
        move = read_user_message(content, self._stop_phrase, bot_replies=0, min_turns=0)
        return SuggestionReply(content=(move.text if move else content) or content)
