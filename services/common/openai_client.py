"""The OpenAI-compatible client of a service's LLM calls (the simulated user, the judge)."""

from __future__ import annotations

import httpx2
import openai

__all__ = ["build_openai_client"]


def build_openai_client(
    *,
    api_key: str,
    base_url: str | None,
    read_timeout_s: float,
    connect_timeout_s: float,
    max_connections: int | None = None,
) -> openai.AsyncOpenAI:
    """The process's one OpenAI client: explicit timeouts and none of the SDK's hidden retries.
    With ``max_connections``, the SDK's aiohttp transport with room for that many calls in
    flight; without, the SDK's default transport."""
    timeout = openai.Timeout(read_timeout_s, connect=connect_timeout_s)
    if max_connections is None:
        return openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(
            timeout=timeout,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        ),
    )
