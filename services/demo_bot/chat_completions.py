"""An OpenAI-compatible ``POST /v1/chat/completions`` that plays the demo teacher, so the
"two prompts talking" case (an openai_chat bot target) runs offline, without a key.

It keeps no state: the system prompt picks the lesson (``lesson`` naming a topic, else a
checksum of the prompt), and the teacher is walked through the conversation's ``user`` lines
again on every call, so the same conversation always gets the same reply."""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.demo_bot.lessons import LESSONS
from services.demo_bot.teacher import Teacher

__all__ = ["DEMO_TEACHER_MODEL", "chat_completions_router", "teacher_reply"]

DEMO_TEACHER_MODEL = "demo-teacher"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str = Field(default="", max_length=100_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = DEMO_TEACHER_MODEL
    messages: list[ChatMessage] = Field(min_length=1, max_length=1_000)


def teacher_reply(messages: list[ChatMessage]) -> str:
    """The teacher's answer to the last user line, after all the earlier ones."""
    prompt = " ".join(m.content for m in messages if m.role in ("system", "developer"))
    lowered = prompt.lower()
    index = next(
        (i for i, lesson in enumerate(LESSONS) if lesson.topic in lowered),
        zlib.crc32(prompt.encode()) % len(LESSONS),
    )
    teacher = Teacher(lesson=LESSONS[index])
    reply = "Hello! Say 'ready' when you want to start."
    for message in messages:
        if message.role == "user":
            reply = teacher.reply(message.content)
    return reply


def chat_completions_router(reply_delay_s: float) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest) -> dict[str, Any]:
        if reply_delay_s:
            await asyncio.sleep(reply_delay_s)  # the teacher thinks
        content = teacher_reply(body.messages)
        return {
            "id": f"chatcmpl-demo-{zlib.crc32(content.encode()):08x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    return router
