"""Prometheus metrics, in a registry per process component so tests can build apps side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


@dataclass
class ReceiverMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.deliveries = Counter(
            "mull_deliveries", "Webhook deliveries by event and outcome", ["event", "outcome"],
            registry=self.registry,
        )
