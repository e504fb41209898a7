"""Prometheus metrics, in a registry per app so tests can build apps side by side."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
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
