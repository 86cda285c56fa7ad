"""Prometheus metrics, one registry per app or worker (no process-global state).

Names follow `lms_<area>_<unit>`; HTTP metrics are labelled by route template, never by the
raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import gc
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The metrics this process exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.http_requests = Counter(
            "lms_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "lms_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self._request_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (label children cached: this runs on every request)."""
        key = (method, route, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(method, route, key[2]),
                self.http_latency.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

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
