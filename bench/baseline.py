"""The original design, reimplemented minimally for comparison: one blocking HTTP call runs the
whole simulation, the bot and the LLM are called with blocking clients inside an async
handler, nothing is reported until the end.

``python -m bench.baseline --port 9600 --bot-url http://127.0.0.1:9500``
"""

from __future__ import annotations

import argparse

import httpx
import openai
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

__all__ = ["create_baseline_app"]


class OriginalRequest(BaseModel):
    bot_id: int
    user_prompt: str
    max_turns: int = 5
    history: str = "[]"


def create_baseline_app(bot_url: str, llm_url: str) -> FastAPI:
    app = FastAPI()
    bot = httpx.Client(base_url=bot_url, timeout=60)
    llm = openai.OpenAI(api_key="bench", base_url=llm_url, max_retries=0, timeout=60)
    prefix = "/robot-ai-lesson/api/v1/bot"

    @app.post("/simulate", response_class=PlainTextResponse)
    async def simulate(request: OriginalRequest) -> str:  # blocking calls in an async handler
        conversation_id = f"baseline-{id(request)}"
        bot.post(  # noqa: ASYNC212 - the original design's flaw, reproduced on purpose
            f"{prefix}/initConversation",
            json={"bot_id": request.bot_id, "conversation_id": conversation_id, "input_slots": {}},
        ).raise_for_status()
        lines, message = [f"User: {request.user_prompt}"], request.user_prompt
        chat: list[dict[str, str]] = [{"role": "system", "content": "a learner"}]
        for turn in range(1, request.max_turns + 1):
            reply = bot.post(  # noqa: ASYNC212 - as above
                f"{prefix}/webhook", json={"conversation_id": conversation_id, "message": message}
            ).json()["data"]["message"]
            lines.append(f"Bot: {reply}")
            if turn == request.max_turns:
                break
            chat += [{"role": "assistant", "content": message}, {"role": "user", "content": reply}]
            completion = llm.chat.completions.create(model="bench", messages=chat)  # type: ignore[arg-type]
            message = completion.choices[0].message.content or ""
            lines.append(f"User: {message}")
        return "\n".join(lines) + "\n"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bot-url", required=True)
    args = parser.parse_args()
    app = create_baseline_app(args.bot_url, f"{args.bot_url}/v1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
