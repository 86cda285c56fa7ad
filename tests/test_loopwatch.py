"""The event loop's lag is measured, and a stuck loop is logged with the code holding it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from lms_live.core.loopwatch import LoopWatch


def _histogram() -> Histogram:
    return Histogram(
        "lag_seconds", "lag", buckets=(0.01, 0.1, 1), registry=CollectorRegistry(auto_describe=True)
    )


def _count_and_sum(histogram: Histogram) -> tuple[float, float]:
    samples = {s.name: s.value for metric in histogram.collect() for s in metric.samples}
    return samples["lag_seconds_count"], samples["lag_seconds_sum"]


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # synchronous work on the loop's thread


async def test_a_stuck_loop_is_logged_with_the_code_holding_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lag = _histogram()
    watch = LoopWatch(lag, stall_ms=150)
    watch.start()
    try:
        await asyncio.sleep(0.2)
        assert _count_and_sum(lag)[0] >= 2  # heartbeats ran
        with caplog.at_level(logging.WARNING, logger="lms_live.loop"):
            hold_the_loop(0.5)
            await asyncio.sleep(0.1)
        # (A loaded test machine may stall the loop elsewhere too: only ours is asserted.)
        (message,) = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("event loop stalled") and "hold_the_loop" in r.getMessage()
        ]
        blocked_ms = int(message.split("for ")[1].split(" ms")[0])
        assert 150 < blocked_ms < 500
        assert "time.sleep(seconds)" in message
        _, total = _count_and_sum(lag)
        assert total >= 0.4  # the heartbeat due during the stall ran that late
    finally:
        watch.stop()


async def test_without_a_threshold_only_the_lag_is_measured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lag = _histogram()
    watch = LoopWatch(lag)
    watch.start()
    try:
        with caplog.at_level(logging.WARNING, logger="lms_live.loop"):
            hold_the_loop(0.3)
            await asyncio.sleep(0.1)
        assert not [r for r in caplog.records if r.getMessage().startswith("event loop stalled")]
        assert _count_and_sum(lag)[1] >= 0.2
    finally:
        watch.stop()
    count = _count_and_sum(lag)[0]
    await asyncio.sleep(0.15)
    assert _count_and_sum(lag)[0] == count  # stopped: no more heartbeats


async def test_the_app_exports_its_loop_lag(client: Any) -> None:
    await asyncio.sleep(0.2)
    text = await (await client.get("/metrics")).text()
    (line,) = [x for x in text.splitlines() if x.startswith("lms_event_loop_lag_seconds_count")]
    assert float(line.split()[-1]) >= 2
