"""Who gets in: room for a new connection (those that have not started make way, oldest
first), the handshake window, and the producer, viewer and room caps a `start` or `subscribe`
is checked against (SECURITY.md says why)."""

from __future__ import annotations

import asyncio

from streamre.config import ServeConfig
from streamre.protocol import Busy, CloseCode, Role
from streamre.server.metrics import Metrics
from streamre.server.rooms import Rooms
from streamre.server.session import Session


class Admission:
    """Args:
        config: the caps and the handshake window.
        sessions: the server's open sessions, in the order they connected (read and, when a
            pending one is made to go, written).
        rooms: the server's rooms.
        metrics: the server's counters.
    """

    def __init__(self, config: ServeConfig, sessions: dict[Session, None], rooms: Rooms,
                 metrics: Metrics) -> None:
        self.config, self.sessions, self.rooms, self.metrics = config, sessions, rooms, metrics

    async def make_way(self) -> bool:
        """Room for one more connection. Connections that have not started are the cheapest
        to open and the least to lose, so past `max_pending` of them, or at `max_sessions`,
        the oldest are closed (1013); False if the server is full of started sessions."""
        cfg = self.config
        pending = [s for s in self.sessions if s.role is None]
        while pending and (len(pending) >= cfg.max_pending or
                           len(self.sessions) >= cfg.max_sessions):
            oldest = pending.pop(0)
            self.sessions.pop(oldest, None)  # no longer counted, though still closing
            self.metrics.sessions_rejected.labels("pending").inc()
            await oldest.ws.close(CloseCode.TRY_AGAIN_LATER, "too many connections waiting")
        return len(self.sessions) < cfg.max_sessions

    async def handshake_watchdog(self, session: Session) -> None:
        await asyncio.sleep(self.config.handshake_timeout_s)
        if session.role is None:
            self.metrics.sessions_rejected.labels("handshake_timeout").inc()
            await session.handshake_expired(self.config.handshake_timeout_s)

    def admit(self, new_role: Role | None, room: str) -> Busy | None:
        """The server's capacity for one more producer or viewer, and for the room."""
        most = self.config.max_producers if new_role == Role.PRODUCER else self.config.max_viewers
        if new_role is not None and sum(1 for s in self.sessions if s.role == new_role) >= most:
            return Busy("server_full", f"this server takes at most {most} {new_role}s; "
                        "try later")
        if not self.rooms.can_enter(room):
            return Busy("too_many_rooms", f"every one of the {self.config.max_rooms} rooms "
                        "this server holds has clients; try later")
        return None
