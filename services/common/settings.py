"""Settings both services read the same way: what they must agree on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topology import (
    DEFAULT_EVENT_LOG_MAX_AGE,
    DEFAULT_MAX_QUEUED_SIMULATIONS,
    DEFAULT_QUORUM_INITIAL_GROUP_SIZE,
    DEFAULT_STREAM_INITIAL_CLUSTER_SIZE,
    Replication,
)
from services.common.bot_targets import (
    BotTarget,
    BotTargetName,
    BotTargetSetting,
    resolve_bot_targets,
)
from services.common.broker_nodes import parse_amqp_urls

__all__ = ["BotTargetName", "SharedSettings"]


class SharedSettings(BaseSettings):
    """Broker and bot-target settings; every gateway and orchestrator must have the same.

    A settings error never shows what was given (``hide_input_in_errors``): the values hold
    API keys, the OpenAI key and the AMQP URL's password. Subclasses' ``model_config`` is
    merged with this one, so every service's settings inherit it."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    amqp_url: str = Field(
        default="amqp://guest:guest@localhost:5672/",
        description="The broker's AMQP URL, or a comma-separated list of the URLs of one "
        "cluster's nodes (same user, password and vhost): each process starts at entry "
        "pid % count and moves to the next node when its node goes away.",
    )
    event_log_max_age: Annotated[str, Field(pattern=r"^\d+[YMDhms]$")] = DEFAULT_EVENT_LOG_MAX_AGE
    max_queued_simulations: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=DEFAULT_MAX_QUEUED_SIMULATIONS,
        description="Length limit of the request queue (x-max-length, reject-publish): over "
        "it the gateway answers 503. Part of the queue's declaration: change it on every "
        "service at once, on an empty queue.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json: one JSON object per line; text: for people; auto: text on a "
        "terminal, JSON otherwise.",
    )
    bot_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:9404"),
        description="The robot-ai-lesson bot API of the built-in target 'default'.",
    )
    bot_targets: dict[BotTargetName, BotTargetSetting] = Field(
        default_factory=dict,
        description='Named bots a request may pick with "bot_target", as JSON: a URL (a '
        'robot_ai_lesson bot API) or an object with "kind" (robot_ai_lesson, openai_chat, '
        'http_json): {"staging": "https://bots.example/api", "tutor": {"kind": '
        '"openai_chat", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", '
        '"api_key_env": "OPENAI_API_KEY"}}. Built in: "default" (CONVSIM_BOT_API_URL) and '
        '"llm" (openai_chat on OPENAI_BASE_URL), unless configured.',
    )

    amqp_first_node: Annotated[int | None, Field(ge=1, le=99)] = Field(
        default=None,
        description="With several nodes in CONVSIM_AMQP_URL: the entry (1-based) this process "
        "connects to first, e.g. the node in its own zone. Default: the process id modulo the "
        "number of entries, which spreads replicas over the nodes.",
    )
    quorum_initial_group_size: Annotated[int, Field(ge=0, le=99)] = Field(
        default=DEFAULT_QUORUM_INITIAL_GROUP_SIZE,
        description="Replicas of every quorum queue convsim declares (x-quorum-initial-group-"
        "size; RabbitMQ places at most one per node, so 3 also works on one node). 0 leaves "
        "the argument out (the broker's default). Part of the queues' declarations: the same "
        "on every service, and as the existing queues were declared.",
    )
    stream_initial_cluster_size: Annotated[int, Field(ge=0, le=99)] = Field(
        default=DEFAULT_STREAM_INITIAL_CLUSTER_SIZE,
        description="Replicas of every stream convsim declares (x-initial-cluster-size; at "
        "most one per node). 0 leaves the argument out (the broker's default: every node). "
        "Part of the streams' declarations, like CONVSIM_QUORUM_INITIAL_GROUP_SIZE.",
    )

    @field_validator("amqp_url")
    @classmethod
    def _nodes_of_one_cluster(cls, value: str) -> str:
        parse_amqp_urls(value)  # its error names the entry, never the password
        return value

    @model_validator(mode="after")
    def _first_node_is_listed(self) -> SharedSettings:
        nodes = len(parse_amqp_urls(self.amqp_url))
        if self.amqp_first_node is not None and self.amqp_first_node > nodes:
            raise ValueError(
                f"CONVSIM_AMQP_FIRST_NODE is {self.amqp_first_node}, but CONVSIM_AMQP_URL lists "
                f"{nodes} node(s)"
            )
        return self

    def targets(self) -> dict[str, BotTarget]:
        """Every bot target a request may name, built-ins included."""
        return resolve_bot_targets(self.bot_targets, self.bot_api_url)

    def replication(self) -> Replication:
        """The replication arguments of every quorum queue and stream."""
        return Replication(self.quorum_initial_group_size, self.stream_initial_cluster_size)
