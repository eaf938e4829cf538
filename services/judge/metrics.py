"""The judge's Prometheus metrics (served on CONVSIM_JUDGE_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
            "Messages read from the event log, by reader: 'lookup' (a simulation read back "
            "from the log to be judged).",
            ["reader"],
            registry=registry,
        )
        self.tokens = Counter(
            "convsim_judge_llm_tokens",
            "Tokens of the judge LLM's calls, by kind (prompt, completion).",
            ["kind"],
            registry=registry,
        )
