"""Prometheus metrics, one registry per app or worker (no process-global state).

Names follow `lms_<area>_<unit>`; HTTP metrics are labelled by route template, never by the
raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from lms_live.core.fanout import FrameStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class HttpCollector(Collector):
    """`lms_http_requests_total` and `lms_http_request_duration_seconds`, counted in plain
    dicts and lists and turned into metric families at scrape time.

    prometheus-client's Counter and Histogram take a lock per increment (three per request)
    for thread safety; requests are counted on the event loop's thread only, so this runs on
    every request without them."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], int] = {}
        # (method, route) -> [count per bucket (not cumulative)..., +Inf count, sum]
        self._latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        series = self._latency.get(key[:2])
        if series is None:
            series = self._latency[key[:2]] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        series[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lms_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self._requests.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "lms_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            labels=["method", "route"],
        )
        bounds = [*(str(float(b)) for b in _LATENCY_BUCKETS), "+Inf"]
        for labels, series in list(self._latency.items()):
            cumulative = list(accumulate(series[:-1]))
            latency.add_metric(list(labels), list(zip(bounds, cumulative, strict=True)), series[-1])
        yield latency


class SocketFrameCollector(Collector):
    """`lms_socket_frames_total` by path: Engine.IO packets written straight to a websocket's
    transport (`direct`) or put on its send queue (`queued`: long-polling, a busy or slow
    socket, per-message deflate); see `core/fanout.py`. Counted per process."""

    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily(
            "lms_socket_frames",
            "Socket.IO packets sent by this process, by how they were written.",
            labels=["path"],
        )
        frames.add_metric(["direct"], FrameStats.direct)
        frames.add_metric(["queued"], FrameStats.queued)
        yield frames


class Metrics:
    """The metrics this process exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.http = HttpCollector()
        self.registry.register(self.http)
        self.registry.register(SocketFrameCollector())
        self.in_flight = 0  # read at scrape time: no lock taken per request
        self.http_in_flight = Gauge(
            "lms_http_requests_in_flight",
            "HTTP requests being handled now.",
            registry=self.registry,
        )
        self.http_in_flight.set_function(lambda: self.in_flight)
        self.sockets_connected = Gauge(
            "lms_sockets_connected",
            "Socket.IO clients connected to this instance, by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.tasks = Counter(
            "lms_tasks",
            "Background tasks run, by task name and outcome (ok, error).",
            ["task", "outcome"],
            registry=self.registry,
        )
        self.task_latency = Histogram(
            "lms_task_duration_seconds",
            "Time to run a background task, by task name.",
            ["task"],
            buckets=_TASK_BUCKETS,
            registry=self.registry,
        )
        self.gc_pause = Histogram(
            "lms_gc_pause_seconds",
            "Pauses of CPython's cyclic garbage collector, by generation.",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "lms_event_loop_lag_seconds",
            "How late the event loop ran a callback due now (sampled 20 times a second).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.live_answers = Counter(
            "lms_live_answers",
            "Live quiz answers accepted and committed by this instance.",
            registry=self.registry,
        )
        self.live_answer_batches = Histogram(
            "lms_live_answer_batch_seconds",
            "Time to judge, insert and commit one micro-batch of live answers.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.live_answer_latency = Histogram(
            "lms_live_answer_seconds",
            "From a live answer's receipt to its ack (judged, committed), server side.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1, 2.5, 5),
            registry=self.registry,
        )
        self.live_closes = Counter(
            "lms_live_questions_closed",
            "Live questions closed by this instance, by reason (time, all_answered, host).",
            ["reason"],
            registry=self.registry,
        )
        self._gc_started = 0.0
        self.observe_request = self.http.observe

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self.gc_pause.labels(str(info.get("generation", -1))).observe(
                time.perf_counter() - self._gc_started
            )

    def watch_gc(self) -> None:
        """Start timing garbage-collector pauses (undo with `unwatch_gc`)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
