"""What a run switches on (``--bot llm``, ``--judge``, ``--limits``): the request each
simulation sends, the services' settings, and the ideal makespan it allows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from bench.fakes import BOT_MODEL, JUDGE_MODEL

__all__ = ["CRITERION", "LLM_BOT_TARGET", "OPENING", "Modes", "judge_concurrency"]

OPENING = "sẵn sàng"
CRITERION = "The bot answers every message."
LLM_BOT_TARGET = "bench-llm"


@dataclass(frozen=True)
class Modes:
    bot: Literal["api", "llm"] = "api"
    """``api``: the robot_ai_lesson bot API (initConversation + webhook) of the fakes;
    ``llm``: an ``openai_chat`` target on the fakes' OpenAI-compatible API."""
    judge: bool = False
    """The judge service runs and every simulation carries one criterion."""
    cap: int | None = None
    """``max_concurrency`` of the bot target (permits on the broker for every bot call)."""

    def body(self, turns: int) -> dict[str, Any]:
        body: dict[str, Any] = {"user_prompt": OPENING, "max_turns": turns, "history": "[]"}
        if self.bot == "llm":
            body |= {"bot_target": LLM_BOT_TARGET, "bot_prompt": "You are a bench bot."}
        else:
            body["bot_id"] = 16
        if self.judge:
            body["criteria"] = [CRITERION]
        return body

    def env(self, fakes_url: str) -> dict[str, str]:
        """Settings of the gateway and the orchestrator(s) for these modes."""
        limit = {"max_concurrency": self.cap} if self.cap else {}
        targets: dict[str, Any] = {}
        if self.bot == "llm":
            targets[LLM_BOT_TARGET] = {
                "kind": "openai_chat",
                "base_url": f"{fakes_url}/v1",
                "model": BOT_MODEL,
                "api_key_env": "OPENAI_API_KEY",
                **limit,
            }
        elif limit:
            targets["default"] = {"kind": "robot_ai_lesson", "url": fakes_url, **limit}
        return {"CONVSIM_BOT_TARGETS": json.dumps(targets)} if targets else {}

    def judge_env(self, n: int) -> dict[str, str]:
        """The judge's own settings: the fakes' LLM as its judge LLM, room for every ending."""
        return {
            "CONVSIM_JUDGE": "llm",
            "CONVSIM_JUDGE_MODEL": JUDGE_MODEL,
            "CONVSIM_JUDGE_CONCURRENCY": str(judge_concurrency(n)),
            "CONVSIM_JUDGE_METRICS_PORT": "0",
        }

    def bot_calls(self, turns: int) -> int:
        """Bot calls per simulation: initConversation and one per turn for the bot API."""
        return turns + (1 if self.bot == "api" else 0)

    def ideal_s(self, n: int, turns: int, latency_s: float) -> float:
        """Every call takes ``latency_s``: the chain of one simulation's calls (bot calls, T-1
        simulated-user calls, the judge's call), or, with a cap, the capped calls of all N
        through ``cap`` slots, when that takes longer."""
        judge = latency_s if self.judge else 0.0
        chain = latency_s * (self.bot_calls(turns) + turns - 1) + judge
        if not self.cap:
            return chain
        through_cap = math.ceil(n * self.bot_calls(turns) / self.cap) * latency_s + judge
        return max(chain, through_cap)

    def describe(self) -> str:
        parts = [f"bot {self.bot}"]
        if self.judge:
            parts.append("judge")
        if self.cap:
            parts.append(f"bot cap {self.cap}")
        return ", ".join(parts)


def judge_concurrency(n: int) -> int:
    """Verdicts at once for a run of ``n`` (convsim's judge and the floor's alike)."""
    return min(max(n, 8), 1_000)
