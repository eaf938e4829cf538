"""The demo bot's HTTP API: the bot API contract of INTERFACE.md, and an OpenAI-compatible
chat completion playing the same teacher (chat_completions.py)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, JsonValue

from services.demo_bot.chat_completions import chat_completions_router
from services.demo_bot.settings import DemoBotSettings
from services.demo_bot.teacher import Teacher

__all__ = ["create_app"]

PREFIX = "/robot-ai-lesson/api/v1/bot"


class InitConversation(BaseModel):
    bot_id: int
    conversation_id: str = Field(min_length=1, max_length=200)
    input_slots: dict[str, JsonValue] = {}


class WebhookMessage(BaseModel):
    conversation_id: str = Field(min_length=1, max_length=200)
    message: str = Field(max_length=10_000)


def _answer(status: int, msg: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": status, "msg": msg, "data": data or {}}


def create_app(settings: DemoBotSettings | None = None) -> FastAPI:
    settings = settings or DemoBotSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.conversations = OrderedDict()
        yield

    app = FastAPI(title="convsim demo bot", version="1", lifespan=lifespan)

    def conversations(request: Request) -> OrderedDict[str, Teacher]:
        store: OrderedDict[str, Teacher] = request.app.state.conversations
        return store

    @app.post(f"{PREFIX}/initConversation")
    async def init_conversation(body: InitConversation, request: Request) -> dict[str, Any]:
        store = conversations(request)
        # Idempotent: a redelivered simulation re-initialises the same conversation.
        store.setdefault(body.conversation_id, Teacher.for_bot(body.bot_id))
        while len(store) > settings.max_conversations:
            store.popitem(last=False)
        return _answer(0, "Success", {"conversation_id": body.conversation_id})

    @app.post(f"{PREFIX}/webhook")
    async def webhook(body: WebhookMessage, request: Request) -> dict[str, Any]:
        teacher = conversations(request).get(body.conversation_id)
        if teacher is None:
            return _answer(1, "Unknown conversation: call initConversation first")
        if settings.reply_delay_s:
            await asyncio.sleep(settings.reply_delay_s)  # the teacher thinks
        reply = teacher.reply(body.message)
        return _answer(0, "Success", {"conversation_id": body.conversation_id, "message": reply})

    app.include_router(chat_completions_router(settings.reply_delay_s))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
