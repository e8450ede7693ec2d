"""Prometheus metrics of the bridge (prefix `sensor_workers_`), in a registry of its own."""

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The `*_created` series double the output and nobody here reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25,
                   0.5, 1.0, 2.5, 5.0)


class BridgeMetrics:
    """Counters and histograms updated by the hub; gauges are read from it at scrape time."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            'sensor_workers_bridge_latency_seconds',
            'Time from a message header stamp to its send to a client (wrench: oldest sample '
            'of the batch).',
            ['topic'], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.received = Counter(
            'sensor_workers_bridge_received_messages',
            'Messages received from ROS per topic.', ['topic'], registry=self.registry)
        self.sent = Counter(
            'sensor_workers_bridge_sent_messages',
            'Websocket messages sent to clients per topic.', ['topic'], registry=self.registry)
        self.sent_bytes = Counter(
            'sensor_workers_bridge_sent_bytes',
            'Websocket payload bytes sent to clients per topic.', ['topic'],
            registry=self.registry)
        self.dropped = Counter(
            'sensor_workers_bridge_dropped_messages',
            'Messages (wrench: samples) dropped per topic and reason.', ['topic', 'reason'],
            registry=self.registry)
        self.encoded = Counter(
            'sensor_workers_bridge_image_encodings',
            'Frame encodings made (one per distinct size and format per frame).', ['format'],
            registry=self.registry)
        self.rejected = Counter(
            'sensor_workers_bridge_rejected_connections',
            'Connections and requests refused, per reason.', ['reason'], registry=self.registry)
        self.registry.register(_Gauges(snapshot))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Gauges(Collector):
    """Queue depths, clients and device health, computed when scraped."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self._snapshot()
        depth = GaugeMetricFamily('sensor_workers_bridge_queue_depth',
                                  'Entries waiting in client queues, summed per topic.',
                                  labels=['topic'])
        clients = GaugeMetricFamily('sensor_workers_bridge_clients',
                                    'Connected websocket clients per topic.', labels=['topic'])
        for topic, figures in snap['topics'].items():
            depth.add_metric([topic], figures['queue_depth'])
            clients.add_metric([topic], figures['clients'])
        up = GaugeMetricFamily('sensor_workers_device_up',
                               '1 while the device heartbeat is fresh.', labels=['device'])
        restarts = GaugeMetricFamily('sensor_workers_device_restarts',
                                     'Restarts reported by the manager.', labels=['device'])
        age = GaugeMetricFamily('sensor_workers_device_heartbeat_age_seconds',
                                'Time since the last heartbeat seen by the bridge.',
                                labels=['device'])
        rate = GaugeMetricFamily('sensor_workers_device_rate_hz',
                                 'Sample or frame rate from the heartbeat.', labels=['device'])
        degraded = GaugeMetricFamily('sensor_workers_device_degraded',
                                     '1 when the manager marks the device degraded.',
                                     labels=['device'])
        for name, record in snap['devices'].items():
            up.add_metric([name], 1.0 if record['up'] else 0.0)
            restarts.add_metric([name], float(record['restarts'] or 0))
            if record['heartbeat_age_ms'] is not None:
                age.add_metric([name], record['heartbeat_age_ms'] / 1000.0)
            rate.add_metric([name], float(record['rate_hz'] or 0.0))
            degraded.add_metric([name], 1.0 if record['degraded'] else 0.0)
        yield from (depth, clients, up, restarts, age, rate, degraded)
