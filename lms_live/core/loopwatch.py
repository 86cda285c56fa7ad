"""How late the event loop runs, and what held it when it was stuck.

Everything of an instance (requests, sockets, broadcasts, answer batches) shares one event
loop, so a piece of synchronous work that runs for 100 ms delays every client of the
instance by 100 ms. `LoopWatch` measures that:

- a heartbeat callback every `TICK` seconds observes how late it ran into
  `lms_event_loop_lag_seconds` (always on: twenty callbacks a second);
- with `LOOP_STALL_LOG_MS` set, a daemon thread also checks the heartbeat and, when the loop
  has not come back for that long, logs a warning "event loop stalled for N ms so far" with
  the loop thread's stack at that moment (the code holding it), once per stall.

Found this way in the live benchmark: redis-py reading its own version from the installed
distributions on every new connection (tens of ms), and the exact-fraction scoring of a
question close (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from prometheus_client import Histogram

log = logging.getLogger("lms_live.loop")

TICK = 0.05  # seconds between heartbeats
STACK_DEPTH = 30  # innermost frames logged


class LoopWatch:
    """Lag histogram and (optionally) stall logging for the running loop."""

    def __init__(self, lag: Histogram, *, stall_ms: int = 0) -> None:
        self.lag = lag
        self.stall = stall_ms / 1000
        self.beat = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()

    def start(self) -> None:
        """Start on the running loop (from its thread)."""
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.beat = time.monotonic()
        self._handle = loop.call_later(TICK, self._heartbeat, loop, self.beat + TICK)
        if self.stall > 0:
            self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _heartbeat(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = time.monotonic()
        self.lag.observe(max(0.0, now - due))
        self.beat = now
        self._handle = loop.call_later(TICK, self._heartbeat, loop, now + TICK)

    def _watch(self) -> None:
        reported = 0.0  # the heartbeat a stall was reported for
        limit = self.stall + TICK
        while not self._stop.wait(min(self.stall / 2, 0.05)):
            beat = self.beat
            blocked = time.monotonic() - beat
            if blocked > limit and beat != reported:
                reported = beat
                frame = sys._current_frames().get(self._loop_thread)
                stack = (
                    "".join(traceback.format_stack(frame)[-STACK_DEPTH:]) if frame else "unknown"
                )
                log.warning(
                    "event loop stalled for %d ms so far; its thread is in:\n%s",
                    round(blocked * 1000),
                    stack,
                )
