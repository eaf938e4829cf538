"""The original backend, reimplemented minimally for comparison, as it behaved: one HTTP call
runs the whole simulation and nothing is reported until the end; the bot API is called with a
BLOCKING client (``requests.post``, a new connection per call) inside the async handler, so
every bot call stops the whole server; the simulated user's LLM is AWAITED on an
``AsyncOpenAI`` client, so while one simulation waits for the LLM the others go on. (See the
seed's ``/api/simulate``: ``requests.post(INIT_ENDPOINT, ...)``, ``requests.post(
WEBHOOK_ENDPOINT, ...)`` and ``await openai_client.chat.completions.create(...)``.)

``python -m bench.baseline --port 9600 --bot-url http://127.0.0.1:9500``
"""

from __future__ import annotations

import argparse
import uuid

import openai
import requests
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

__all__ = ["create_baseline_app"]


class OriginalRequest(BaseModel):
    bot_id: int
    user_prompt: str
    max_turns: int = 5
    history: str = "[]"


SYSTEM_PROMPT = (
    "You are a helpful assistant that generates the next user message in a conversation. "
    "The user is learning English from a bot."
)


def create_baseline_app(bot_url: str, llm_url: str) -> FastAPI:
    app = FastAPI()
    llm = openai.AsyncOpenAI(api_key="bench", base_url=llm_url, max_retries=0, timeout=60)
    prefix = f"{bot_url}/robot-ai-lesson/api/v1/bot"

    @app.post("/simulate", response_class=PlainTextResponse)
    async def simulate(request: OriginalRequest) -> str:
        conversation_id = f"simulation-{uuid.uuid4()}"
        init = requests.post(  # noqa: ASYNC210 - the original's blocking bot call, on purpose
            f"{prefix}/initConversation",
            headers={"Content-Type": "application/json"},
            json={"bot_id": request.bot_id, "conversation_id": conversation_id, "input_slots": {}},
            timeout=10,
        )
        if init.status_code != 200 or init.json().get("status") != 0:
            raise HTTPException(500, f"Failed to initialize conversation: {init.status_code}")
        lines, message = [f"User: {request.user_prompt}"], request.user_prompt
        history = [{"role": "user", "content": message}]
        for turn in range(request.max_turns):
            webhook = requests.post(  # noqa: ASYNC210 - as above
                f"{prefix}/webhook",
                headers={"Content-Type": "application/json"},
                json={"conversation_id": conversation_id, "message": message},
                timeout=30,
            )
            if webhook.status_code != 200:
                raise HTTPException(500, f"Failed to send message: HTTP {webhook.status_code}")
            reply = webhook.json().get("data", {}).get("message", "")
            lines.append(f"Bot: {reply}")
            history.append({"role": "assistant", "content": reply})
            if turn == request.max_turns - 1:
                break
            # As the original: its own lines "user", the bot's "assistant", a system prompt first
            chat = [{"role": "system", "content": SYSTEM_PROMPT}, *history]
            completion = await llm.chat.completions.create(
                model="gpt-4o-mini",
                messages=chat,  # type: ignore[arg-type]
                max_tokens=100,
                temperature=0.7,
            )
            message = (completion.choices[0].message.content or "").strip()
            lines.append(f"User: {message}")
            history.append({"role": "user", "content": message})
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
