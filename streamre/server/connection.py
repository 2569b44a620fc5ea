"""A client's WebSocket as the session and its outbox see it: text out, frames in, a close.

It wraps the ASGI (Starlette) WebSocket so the shells above need not know the server library,
and turns every way a connection can vanish into one exception, `Disconnected`.
"""

from __future__ import annotations

from typing import AsyncIterator

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState


class Disconnected(Exception):
    """The client went away, or the connection was closed."""


class Connection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.close_code: int | None = None

    async def send(self, text: str) -> None:
        if self.close_code is not None:
            raise Disconnected()
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as e:
            # RuntimeError: Starlette's "send after close"; OSError: uvicorn's ClientDisconnected
            self.close_code = self.close_code or 1006
            raise Disconnected() from e

    async def frames(self) -> AsyncIterator[str | bytes]:
        """Every text and binary frame until the client closes (or the connection is lost)."""
        while self.close_code is None:
            message = await self.websocket.receive()
            if self.close_code is not None:
                return  # closed by this side while waiting: what came after is not used
            if message["type"] == "websocket.disconnect":
                self.close_code = message.get("code", 1000)
                return
            if message.get("bytes") is not None:
                yield message["bytes"]
            elif message.get("text") is not None:
                yield message["text"]

    async def close(self, code: int, reason: str = "") -> None:
        if self.close_code is not None or \
                self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        self.close_code = int(code)
        try:
            await self.websocket.close(int(code), reason)
        except (RuntimeError, OSError):
            pass  # already gone
