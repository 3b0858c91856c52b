"""Prometheus metrics of the collector.

Per-sandbox series carry one label, `sandbox_id`: one series set per running sandbox, present
while it is sampled and gone from the next scrape once it stops (the families are rendered at
scrape time from the latest samples, so nothing lingers). The owner is deliberately not a label:
it adds no information a dashboard cannot join from the API, and every extra label multiplies
series. With 500 sandboxes that is about 6,000 series, within what one Prometheus handles easily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sbx_metrics_collector.sample import SampleJson

ROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ROUND_SECONDS = Histogram(
    "collector_round_seconds", "Wall time of one sampling round of every sandbox.", buckets=ROUND_BUCKETS
)
ROUND_CPU_SECONDS = Histogram(
    "collector_round_cpu_seconds", "CPU time of the collector for one sampling round.", buckets=ROUND_BUCKETS
)
SANDBOXES = Gauge("collector_sandboxes", "Sandboxes being sampled, by source of the counters.", ["path"])


class SandboxSeries(Collector):
    """Renders the latest sample of every sandbox being sampled as Prometheus families."""

    def __init__(self, latest: Callable[[], Mapping[str, SampleJson]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        label = ["sandbox_id"]
        cpu = GaugeMetricFamily("sandbox_cpu_usage_percent", "CPU used, percent of the limit.", labels=label)
        cores = GaugeMetricFamily("sandbox_cpu_cores", "CPU limit in cores.", labels=label)
        mem = GaugeMetricFamily(
            "sandbox_memory_usage_bytes", "Memory used, without page cache.", labels=label
        )
        mem_limit = GaugeMetricFamily("sandbox_memory_limit_bytes", "Memory limit.", labels=label)
        mem_pct = GaugeMetricFamily(
            "sandbox_memory_usage_percent", "Memory used, percent of limit.", labels=label
        )
        rx = CounterMetricFamily("sandbox_network_receive_bytes", "Bytes received.", labels=label)
        tx = CounterMetricFamily("sandbox_network_transmit_bytes", "Bytes sent.", labels=label)
        rx_packets = CounterMetricFamily("sandbox_network_receive_packets", "Packets received.", labels=label)
        tx_packets = CounterMetricFamily("sandbox_network_transmit_packets", "Packets sent.", labels=label)
        io_read = CounterMetricFamily("sandbox_io_read_bytes", "Block device bytes read.", labels=label)
        io_write = CounterMetricFamily("sandbox_io_write_bytes", "Block device bytes written.", labels=label)
        pids = GaugeMetricFamily("sandbox_pids", "Processes and threads.", labels=label)
        for sandbox_id, s in self._latest().items():
            key = [sandbox_id]
            cpu.add_metric(key, s["cpu"]["usagePercent"])
            cores.add_metric(key, s["cpu"]["cores"])
            mem.add_metric(key, s["memory"]["usageBytes"])
            mem_limit.add_metric(key, s["memory"]["limitBytes"])
            mem_pct.add_metric(key, s["memory"]["usagePercent"])
            rx.add_metric(key, s["network"]["rxBytes"])
            tx.add_metric(key, s["network"]["txBytes"])
            rx_packets.add_metric(key, s["network"]["rxPackets"])
            tx_packets.add_metric(key, s["network"]["txPackets"])
            io_read.add_metric(key, s["io"]["readBytes"])
            io_write.add_metric(key, s["io"]["writeBytes"])
            pids.add_metric(key, s["pids"])
        yield from (
            cpu,
            cores,
            mem,
            mem_limit,
            mem_pct,
            rx,
            tx,
            rx_packets,
            tx_packets,
            io_read,
            io_write,
            pids,
        )


def register_sandbox_series(latest: Callable[[], Mapping[str, SampleJson]]) -> SandboxSeries:
    series = SandboxSeries(latest)
    REGISTRY.register(series)
    return series
