"""`/live`: players play live quizzes, hosts run them. The protocol (every event, payload and
ack) is in docs/live-protocol.md.

Per-socket data lives in the Socket.IO session: `player_id` and `live_id` for players (from
their player token, checked on connect), `hosting` for hosts (after `host`), the event bucket.
Every event of a socket passes a token bucket (LIVE_SOCKET_EVENTS_PER_SECOND, burst 2x): over
it the ack is `rate_limited`, and a socket that keeps flooding is disconnected, so one socket
cannot slow the others down. An answer's receive time is taken before anything else.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from lms_live import keys
from lms_live.core.db import utcnow
from lms_live.core.errors import Forbidden, LmsError, RateLimited, ValidationFailed
from lms_live.core.realtime import (
    LmsNamespace,
    SocketAuth,
    ack_error,
    ack_ok,
    acked,
    check_origin,
    refusal,
    user_room,
)
from lms_live.core.security import Principal
from lms_live.live import service
from lms_live.live.answers import Submitted
from lms_live.live.events import (
    NAMESPACE,
    Outbox,
    hosts_room,
    hosts_stream,
    room,
    stream,
)
from lms_live.live.runtime import LiveRuntime
from lms_live.live.schemas import AnswerIn, ControlIn, HostIn, KickIn, SyncIn, UnbanIn
from lms_live.quizzes import grading

log = logging.getLogger("lms_live.live")

FLOOD_REFUSALS = 2  # refused events within a second, in multiples of the rate, before a drop
CONTROLS = ("start", "next", "close_question", "pause", "resume", "skip", "end")


class Kicked(Forbidden):
    code = "kicked"
    message = "The host removed you from this session."


class NotPlayer(Forbidden):
    code = "not_in_session"
    message = "Connect with a player token (POST /api/v1/live/join) to play."


class LiveNamespace(LmsNamespace):
    """See the module docstring and docs/live-protocol.md."""

    def __init__(self, app: web.Application, *, auth: SocketAuth) -> None:
        super().__init__(NAMESPACE, auth=auth, metrics=app[keys.METRICS])
        self.app = app

    @property
    def rt(self) -> LiveRuntime:
        return self.app[keys.LIVE]

    # ------------------------------------------------------------------ connection

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        player_token = auth.get("player_token") if isinstance(auth, Mapping) else None
        if player_token is None:
            await super().on_connect(sid, environ, auth)
            return
        try:
            check_origin(environ, self.app[keys.SETTINGS])
            claims = self.rt.tokens.decode(player_token)
            principal: Principal | None = None
            if claims.user_id is not None:
                principal = await self.auth.connect(environ, auth)
                if principal.user_id != claims.user_id:
                    raise Forbidden("This player token belongs to another account.")
            async with self.app[keys.DATABASE].reads() as session:
                kicked = await service.player_kicked(
                    session, player_id=claims.player_id, session_id=claims.session_id
                )
            if kicked:
                raise Kicked()
        except LmsError as exc:
            raise refusal(exc) from exc
        live_id, player_id = str(claims.session_id), str(claims.player_id)
        # Small on purpose: thousands of these per instance (a guest's is two entries).
        data: dict[str, str | None] = {"player_id": player_id, "live_id": live_id}
        if principal is not None:
            data |= {
                "user_id": str(principal.user_id),
                "role": principal.role,
                "session_id": str(principal.session_id) if principal.session_id else None,
            }
        await self.save_session(sid, data)
        if principal is not None:
            await self._watch_expiry(sid, principal)
            await self.enter_room(sid, user_room(str(principal.user_id)))
        # Only the session's room: a room per player would cost ~1 KB per learner; kicks and
        # presence find a player's sockets through their sessions instead.
        await self.enter_room(sid, room(live_id))
        self.metrics.sockets_connected.labels(self.namespace).inc()
        await self.rt.hot.online_add(live_id, [player_id])

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        await super().on_disconnect(sid, reason)
        session = await self.get_session(sid)
        if session.get("player_id"):
            # Another tab of the same player still connected is counted again by the next
            # presence refresh (every few seconds).
            await self.rt.hot.online_remove(session["live_id"], session["player_id"])

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Every client event passes the socket's token bucket first."""
        if event not in ("connect", "disconnect") and args:
            refused = await self._throttle(str(args[0]))
            if refused is not None:
                return refused
        return await super().trigger_event(event, *args)

    async def _throttle(self, sid: str) -> dict[str, Any] | None:
        session = await self.get_session(sid)
        rate = self.app[keys.SETTINGS].live_socket_events_per_second
        burst = 2.0 * rate
        now = time.monotonic()
        tokens, last = session.get("bucket", (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1:
            session["bucket"] = (tokens - 1, now)
            return None
        session["bucket"] = (tokens, now)
        # Refusals counted per one-second window: a socket refused more than FLOOD_REFUSALS x
        # its rate within one is flooding on purpose (a client that merely bursts is refused
        # a few times and slows down).
        window, refusals = session.get("refusals", (now, 0))
        if now - window > 1.0:
            window, refusals = now, 0
        refusals += 1
        session["refusals"] = (window, refusals)
        if refusals > rate * FLOOD_REFUSALS:
            log.warning("dropping a /live socket that keeps flooding (%s)", sid)
            await self.disconnect(sid)
        return ack_error(RateLimited(1.0 / rate, "Too many events from this socket; slow down."))

    async def _player(self, sid: str) -> tuple[uuid.UUID, uuid.UUID]:
        session = await self.get_session(sid)
        if not session.get("player_id"):
            raise NotPlayer()
        return uuid.UUID(session["live_id"]), uuid.UUID(session["player_id"])

    # ------------------------------------------------------------------ players

    @acked
    async def on_join(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        SyncIn.model_validate(data if data is not None else {})
        return await self._snapshot(sid)

    @acked
    async def on_sync(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        SyncIn.model_validate(data if data is not None else {})
        return await self._snapshot(sid)

    async def _snapshot(self, sid: str) -> dict[str, Any]:
        live_id, player_id = await self._player(sid)
        head = await self.rt.streams.head(stream(str(live_id)))
        async with self.app[keys.DATABASE].reads() as session:
            player, live = await service.player_of(session, player_id=player_id, session_id=live_id)
            if player.kicked_at is not None:
                raise Kicked()
            snapshot = await service.player_snapshot(session, live=live, player=player)
        return ack_ok(seq=head, snapshot=snapshot)

    async def on_answer(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        received = utcnow()  # before anything else: the time the answer is judged by
        started = time.perf_counter()
        ack = await self._answer(sid, data, received)
        self.metrics.live_answer_latency.observe(time.perf_counter() - started)
        return ack

    @acked
    async def _answer(self, sid: str, data: Any, received: Any) -> dict[str, Any]:
        payload = AnswerIn.model_validate(data)
        live_id, player_id = await self._player(sid)
        question = await self.rt.question(live_id, payload.question)
        if question is None:
            raise service.refused("question_not_open")
        try:
            judged = question.judge(payload.response)
        except grading.InvalidResponse as exc:
            raise ValidationFailed(
                "This response does not fit the question.",
                details=[{**d, "loc": ["response", *d.get("loc", [])]} for d in exc.details],
            ) from exc
        item = Submitted(
            session_id=live_id,
            index=payload.question,
            player_id=player_id,
            answer_id=payload.answer_id,
            response=judged.stored,
            choice=judged.choice,
            state=judged.state,
            fraction=judged.fraction,
            received_at=received,
        )
        return await self.rt.writer.submit(item)

    @acked
    async def on_me(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        live_id, player_id = await self._player(sid)
        state = await self.rt.hot.get_player(str(live_id), str(player_id))
        if state is None:
            async with self.app[keys.DATABASE].reads() as session:
                player, live = await service.player_of(
                    session, player_id=player_id, session_id=live_id
                )
                state = await service.player_state(session, live=live, player=player)
        return ack_ok(player=state)

    @acked
    async def on_leave(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        live_id, player_id = await self._player(sid)
        async with self.app[keys.DATABASE].transaction() as session:
            await service.leave(session, player_id=player_id)
        await self.rt.hot.online_remove(str(live_id), str(player_id))
        outbox = Outbox(str(live_id))
        outbox.hosts("player_left", player_id=str(player_id))
        await self.rt.publish(outbox)
        return ack_ok()

    # ------------------------------------------------------------------ hosts

    async def _principal(self, sid: str) -> Principal:
        session = await self.get_session(sid)
        if not session.get("user_id") or session.get("player_id"):
            raise service.NotHost()
        return Principal(
            user_id=uuid.UUID(session["user_id"]),
            role=str(session["role"]),
            jti="socket",
            expires_at=utcnow(),
            session_id=uuid.UUID(session["session_id"]) if session.get("session_id") else None,
        )

    @acked
    async def on_host(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        payload = HostIn.model_validate(data)
        principal = await self._principal(sid)
        live_id = str(payload.session_id)
        async with self.app[keys.DATABASE].reads() as session:
            live = await service.hosted(session, principal=principal, session_id=payload.session_id)
        await self.enter_room(sid, room(live_id))
        await self.enter_room(sid, hosts_room(live_id))
        (await self.get_session(sid))["hosting"] = live_id
        seq = await self.rt.streams.head(stream(live_id))
        host_seq = await self.rt.streams.head(hosts_stream(live_id))
        online = await self.rt.hot.online_players(live_id)
        async with self.app[keys.DATABASE].reads() as session:
            live = await service.hosted(session, principal=principal, session_id=payload.session_id)
            snapshot = await service.host_snapshot(
                session,
                live=live,
                public_url=self.app[keys.SETTINGS].public_url,
                online=online,
            )
        return ack_ok(seq=seq, host_seq=host_seq, snapshot=snapshot)

    async def _hosting(self, sid: str, requested: uuid.UUID | None) -> uuid.UUID:
        session = await self.get_session(sid)
        hosting = session.get("hosting")
        if hosting is None or (requested is not None and str(requested) != hosting):
            raise service.NotHost()
        return uuid.UUID(hosting)

    async def _control(self, sid: str, data: Any, action: str) -> dict[str, Any]:
        payload = ControlIn.model_validate(data if data is not None else {})
        principal = await self._principal(sid)
        live_id = await self._hosting(sid, payload.session_id)
        outbox = Outbox(str(live_id))
        states: dict[str, dict[str, Any]] = {}
        async with self.app[keys.DATABASE].transaction() as session:
            live = await service.control(
                session,
                principal=principal,
                session_id=live_id,
                action=action,
                outbox=outbox,
                hot_states=states,
            )
            phase, index = live.phase, live.current_index
        if states:
            self.rt.metrics.live_closes.labels("host").inc()
        await self.rt.publish(outbox, states)
        return ack_ok(phase=phase, index=index)

    @acked
    async def on_start(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "start")

    @acked
    async def on_next(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "next")

    @acked
    async def on_close_question(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "close_question")

    @acked
    async def on_pause(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "pause")

    @acked
    async def on_resume(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "resume")

    @acked
    async def on_skip(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "skip")

    @acked
    async def on_end(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        return await self._control(sid, data, "end")

    @acked
    async def on_kick(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        payload = KickIn.model_validate(data)
        principal = await self._principal(sid)
        live_id = await self._hosting(sid, payload.session_id)
        outbox = Outbox(str(live_id))
        async with self.app[keys.DATABASE].transaction() as session:
            await service.kick(
                session,
                principal=principal,
                session_id=live_id,
                player_id=payload.player_id,
                ban=payload.ban,
                outbox=outbox,
            )
        await self.rt.hot.online_remove(str(live_id), str(payload.player_id))
        await self.rt.publish(outbox)
        await self.rt.kick(str(live_id), str(payload.player_id), banned=payload.ban)
        return ack_ok()

    @acked
    async def on_unban(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        payload = UnbanIn.model_validate(data)
        principal = await self._principal(sid)
        live_id = await self._hosting(sid, payload.session_id)
        async with self.app[keys.DATABASE].transaction() as session:
            await service.unban(
                session, principal=principal, session_id=live_id, player_id=payload.player_id
            )
        return ack_ok()
