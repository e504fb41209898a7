"""Prometheus metrics, in a registry per app so tests can build apps side by side."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector


class QueueDepth(Collector):
    """Jobs due now (waiting or running): what autoscalers scale workers on.

    Read from Redis at scrape time; left out of the scrape, not reported as zero, when Redis cannot say.
    """

    def __init__(self) -> None:
        self.value: float | None = None

    def collect(self) -> Iterator[Metric]:
        if self.value is not None:
            yield GaugeMetricFamily("mull_queue_depth", "arq jobs due now, waiting or running", value=self.value)


class WorkerStats(Collector):
    """The counters workers keep in Redis (``mull:stats``), read at scrape time like the queue depth."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.awaiting: int | None = None

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("mull_runs", "Agent, plan and critique runs by stage and outcome",
                                   labels=["stage", "outcome"])
        seconds = SummaryMetricFamily("mull_run_seconds", "Run duration by stage", labels=["stage"])
        tokens = CounterMetricFamily("mull_model_tokens", "Model tokens used by stage", labels=["stage"])
        told = CounterMetricFamily("mull_notifications", "Notifications people got from Mull, by channel and kind",
                                   labels=["channel", "kind"])
        spent_tokens = CounterMetricFamily("mull_installation_tokens", "Model tokens used by installation, input "
                                           "or output", labels=["installation", "direction"])
        cost = CounterMetricFamily("mull_installation_cost_dollars", "What the model tokens of priced models cost, "
                                   "US dollars (MULL_MODEL_PRICES), by installation", labels=["installation"])
        unpriced = CounterMetricFamily("mull_installation_unpriced_tokens", "Model tokens of models without a "
                                       "price in MULL_MODEL_PRICES, by installation", labels=["installation"])
        for name, value in sorted(self.fields.items()):
            kind, *labels = name.split("|")
            if kind == "runs" and len(labels) == 2:
                runs.add_metric(labels, float(value))
            elif kind == "tokens" and len(labels) == 1:
                tokens.add_metric(labels, float(value))
            elif kind == "notifications" and len(labels) == 2:
                told.add_metric(labels, float(value))
            elif kind == "spend_tokens" and len(labels) == 2:
                spent_tokens.add_metric(labels, float(value))
            elif kind == "spend_cost_micro" and len(labels) == 1:
                cost.add_metric(labels, float(value) / 1_000_000)
            elif kind == "spend_unpriced" and len(labels) == 1:
                unpriced.add_metric(labels, float(value))
            elif kind == "count" and len(labels) == 1:
                total = float(self.fields.get(f"seconds|{labels[0]}", 0))
                seconds.add_metric(labels, count_value=int(value), sum_value=total)
        yield from (runs, seconds, tokens, told, spent_tokens, cost, unpriced)
        if self.awaiting is not None:
            yield GaugeMetricFamily("mull_prs_awaiting_review", "Mull pull requests out of draft and open",
                                    value=self.awaiting)


@dataclass
class ReceiverMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.deliveries = Counter(
            "mull_deliveries", "Webhook deliveries by event and outcome", ["event", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = QueueDepth()
        self.registry.register(self.queue_depth)
        self.worker_stats = WorkerStats()
        self.registry.register(self.worker_stats)
