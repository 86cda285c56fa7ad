"""`LmsStreamBroker`: taskiq-redis's stream broker, made stoppable and self-healing.

Why not the stock `RedisStreamBroker.listen()`:
- Stopping it means cancelling a read inside redis-py, and on Python 3.11 `asyncio.wait_for`
  drops a cancel that lands as the wrapped send completes (CPython gh-86296): the worker then
  never exits. Here `listen()` ends by itself once `request_stop()` is called, checked between
  reads (each blocks at most `xread_block` ms), so nothing is ever cancelled.
- It reclaims (XAUTOCLAIM) messages left pending by a dead worker only after a non-empty read,
  so on an idle queue they wait forever. Here reclaiming runs every `reclaim_interval` seconds.

Delivery is at-least-once: a message is acknowledged after its task ran; one whose worker died
is redelivered once idle for `idle_timeout` ms. Tasks must be idempotent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from redis.asyncio import Redis
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker


class LmsStreamBroker(RedisStreamBroker):
    """Redis stream broker whose `listen()` stops cooperatively and reclaims periodically."""

    def __init__(self, *args: Any, reclaim_interval: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reclaim_interval = reclaim_interval
        self._stop_requested = False

    def request_stop(self) -> None:
        """Make `listen()` return after the read under way (at most `xread_block` ms)."""
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        streams = [self.queue_name, *self.additional_streams]
        cursors = dict.fromkeys(streams, "0-0")
        next_reclaim = 0.0
        async with Redis(connection_pool=self.connection_pool) as redis:
            while not self._stop_requested:
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self.reclaim_interval
                    for stream in streams:
                        cursors[stream], claimed, *_ = await redis.xautoclaim(
                            stream,
                            self.consumer_group_name,
                            self.consumer_name,
                            min_idle_time=self.idle_timeout,
                            start_id=cursors[stream],
                            count=self.unacknowledged_batch_size,
                        )
                        for message_id, fields in claimed:
                            if fields:  # an entry trimmed from the stream comes back empty
                                yield self._ackable(message_id, fields, stream)
                fetched: Any = await redis.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">", **self.additional_streams},  # type: ignore[dict-item]
                    block=self.block,
                    count=self.count,
                    noack=False,
                )
                for source, messages in fetched or []:
                    for message_id, fields in messages:
                        yield self._ackable(message_id, fields, source)

    def _ackable(self, message_id: Any, fields: Any, stream: Any) -> AckableMessage:
        return AckableMessage(
            data=fields[b"data"], ack=self._ack_generator(id=message_id, queue_name=stream)
        )

    async def pending_count(self) -> int:
        """Messages delivered to this consumer and not yet acknowledged."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            summary = await redis.xpending_range(
                self.queue_name,
                self.consumer_group_name,
                "-",
                "+",
                1,
                consumername=self.consumer_name,
            )
        return len(summary)

    async def forget_consumer(self) -> None:
        """Remove this consumer from the group (only call when it has nothing pending)."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            await redis.xgroup_delconsumer(
                self.queue_name, self.consumer_group_name, self.consumer_name
            )
