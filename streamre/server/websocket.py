"""The streaming WebSocket (`/v1/stream`): each connection is checked (its Origin, the server's
room for it), becomes a `Session`, and is read until it ends; the session is closed and let go
whatever ended it."""

from __future__ import annotations

import asyncio
import logging
import uuid

from starlette.websockets import WebSocket

from streamre.config import ServeConfig
from streamre.inference.engine import InferenceEngine
from streamre.protocol import CloseCode, Limits, SessionProtocol
from streamre.server.admission import Admission
from streamre.server.connection import Connection, Disconnected
from streamre.server.metrics import Metrics
from streamre.server.names import RoomNames
from streamre.server.rooms import Rooms
from streamre.server.session import Session, SessionSettings
from streamre.voices.turns import SHORTEST_LOOKED_AT

log = logging.getLogger("streamre.server")


class StreamEndpoint:
    """The ASGI WebSocket endpoint; `sessions` is the server's own register of open sessions
    (in the order they connected), `accepting` turns False on shutdown."""

    def __init__(self, config: ServeConfig, engine: InferenceEngine, rooms: Rooms,
                 room_names: RoomNames, admission: Admission, metrics: Metrics,
                 sessions: dict[Session, None], text_per_minute: int) -> None:
        self.config, self.engine, self.rooms, self.room_names = config, engine, rooms, room_names
        self.admission, self.metrics, self.sessions = admission, metrics, sessions
        self.text_per_minute = text_per_minute
        self.accepting = True

    async def serve(self, websocket: WebSocket) -> None:
        """One connection, from its handshake to its end."""
        origin = websocket.headers.get("origin")
        allowed = self.config.allowed_origins
        if allowed and origin is not None and origin not in allowed:  # non-browsers send none
            self.metrics.sessions_rejected.labels("origin").inc()
            await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
            return
        await websocket.accept()
        connection = Connection(websocket)
        if not self.accepting or not await self.admission.make_way():
            self.metrics.sessions_rejected.labels("full").inc()
            await connection.close(CloseCode.TRY_AGAIN_LATER, "server full, try later")
            return
        session = self._session(connection)
        self.sessions[session] = None
        watchdog = asyncio.create_task(self.admission.handshake_watchdog(session))
        try:
            async for message in connection.frames():
                await session.on_message(message)
        except Disconnected:
            pass
        except Exception:
            log.exception("session %s failed", session.id)
            await connection.close(CloseCode.SERVER_ERROR, "server error")
        finally:
            watchdog.cancel()
            await session.close()
            self.sessions.pop(session, None)

    def _session(self, connection: Connection) -> Session:
        cfg = self.config
        protocol = SessionProtocol(
            uuid.uuid4().hex[:12], cfg.vad,
            Limits(cfg.max_message_bytes, cfg.vad.max_utterance_s, cfg.max_rooms_per_session,
                   cfg.max_text_chars, self.text_per_minute), self.admission.admit,
            partials=cfg.partial_pacing,
            turns_from=SHORTEST_LOOKED_AT if cfg.voices == "on" and cfg.voice.turns == "on"
            else None)
        return Session(connection, protocol, self.engine, self.rooms, self.room_names,
                       self.metrics,
                       SessionSettings(cfg.send_queue, cfg.session_queue, cfg.lag_warning_s,
                                       cfg.voice))
