"""The judge's Prometheus metrics (served on CONVSIM_JUDGE_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["JudgeMetrics"]

JUDGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class JudgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.verdicts = Counter(
            "convsim_judge_verdicts",
            "Verdicts published, by result (pass, fail, unjudged).",
            ["verdict"],
            registry=registry,
        )
        self.duration = Histogram(
            "convsim_judge_duration_seconds",
            "Time to judge one simulation: reading its events, the judge LLM, publishing.",
            buckets=JUDGE_BUCKETS,
            registry=registry,
        )
        self.llm_errors = Counter(
            "convsim_judge_llm_errors",
            "Failed calls of the judge LLM, by error (timeout, unreachable, rate_limited, "
            "http_<status>, bad_answer).",
            ["error"],
            registry=registry,
        )
        self.already_judged = Counter(
            "convsim_judge_already_judged",
            "Deliveries of a simulation whose verdict was in the log already (redeliveries): "
            "nothing published.",
            registry=registry,
        )
        self.log_messages_read = Counter(
            "convsim_judge_log_messages_read",
            "Messages read from the event log, by reader: 'follower' (the judge follows the "
            "log once) or 'lookup' (a simulation read back because the memory could not tell).",
            ["reader"],
            registry=registry,
        )
        self.log_lookups = Counter(
            "convsim_judge_log_lookups",
            "Simulations read back from the event log to be judged, by reason: 'unknown' (not "
            "remembered from its first event to its end: it began before the judge's "
            "look-back, or was evicted) or 'follower_unavailable'.",
            ["reason"],
            registry=registry,
        )
        self.memory_simulations = Gauge(
            "convsim_judge_memory_simulations",
            "Simulations the judge remembers (with their events, or that they were judged).",
            registry=registry,
        )
        self.memory_bytes = Gauge(
            "convsim_judge_memory_bytes",
            "Bytes of events the judge remembers (counted as CONVSIM_JUDGE_MEMORY_MB counts).",
            registry=registry,
        )
        self.tokens = Counter(
            "convsim_judge_llm_tokens",
            "Tokens of the judge LLM's calls, by kind (prompt, completion).",
            ["kind"],
            registry=registry,
        )
