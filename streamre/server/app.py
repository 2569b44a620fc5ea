"""`streamre serve`: HTTP routes and the streaming WebSocket on one port (websockets' asyncio API).

The server owns the rooms, the inference engine and the metrics; each connection gets a
`Session`. Lifecycle: `start()` listens at once and loads the model in the background
(`/healthz` answers 200 only once it is loaded and warmed up); `shutdown()` stops accepting,
finishes every producer (flush, inference, `done`), closes viewers, then stops the engine.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import mimetypes
import re
import signal
import socket
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streamre import WEB_CLIENT_DIR
from streamre.config import ServeConfig
from streamre.graph import RoomGraph
from streamre.graph.store import DB_NAME, GraphStore
from streamre.inference import InferenceEngine, ModelExtractor, TripletExtractor
from streamre.mqtt.outbox import MqttOutbox
from streamre.mqtt.publisher import MqttPublisher
from streamre.protocol import STREAM_PATH, CloseCode, Limits, SessionProtocol, valid_room
from streamre.server.metrics import Metrics
from streamre.server.rooms import Rooms
from streamre.server.session import Session, SessionSettings

log = logging.getLogger("streamre.server")

OUTBOX_NAME = "mqtt-outbox.db"


class StreamServer:
    def __init__(self, config: ServeConfig,
                 load_extractor: Callable[[], TripletExtractor] | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.store: GraphStore | None = None
        self.publisher: MqttPublisher | None = None
        self.rooms: Rooms | None = None
        self.sessions: set[Session] = set()
        self.engine = InferenceEngine(
            load_extractor or (lambda: ModelExtractor.load(
                config.model or None, config.device, config.threads, config.max_new_tokens,
                dtype=config.dtype, max_padding=config.max_padding)),
            max_batch=config.max_batch, gather_ms=config.gather_ms, metrics=self.metrics,
            live_producers=lambda: sum(1 for s in self.sessions if s.role == "producer"))
        self._server: Server | None = None
        self._loading: asyncio.Task | None = None
        self._accepting = True
        self.stopped = asyncio.Event()  # set when the model failed to load, or on shutdown

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.store = GraphStore(Path(self.config.data_dir) / DB_NAME)
        self.store.save_settings(self.config.graph)
        if self.config.mqtt:
            outbox = MqttOutbox(Path(self.config.data_dir) / OUTBOX_NAME,
                                self.config.mqtt_outbox_max)
            self.publisher = MqttPublisher(
                self.config.mqtt, self.config.server_id or _host_id(), outbox,
                lambda room: self.rooms.open(room).graph.snapshot(), self.metrics,
                self.config.mqtt_snapshot_interval_s)
        self.rooms = Rooms(self.store, self.config.graph, self.publisher, self._refused)
        restored = self.rooms.restore()
        if restored:
            log.info("restored %d room(s) from %s", len(restored), self.store.path)
        if self.publisher is not None:
            self.publisher.start(restored)
        origins = None
        if self.config.allowed_origins:
            origins = list(self.config.allowed_origins) + [None]  # non-browser clients send none
        self._server = await serve(
            self._handle, self.config.host, self.config.port, process_request=self._http,
            max_size=self.config.max_message_bytes, origins=origins, ping_interval=20,
            ping_timeout=20, logger=logging.getLogger("streamre.websockets"))
        self._loading = asyncio.create_task(self._load_model())

    async def _load_model(self) -> None:
        try:
            await self.engine.start()
        except Exception:
            log.exception("the model could not be loaded")
            self.stopped.set()
            return
        extractor = self.engine.extractor
        log.info("model %s ready on %s", extractor.name, extractor.device)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    def _refused(self, name: str, graph: RoomGraph, count: int) -> None:
        self.metrics.facts_refused.inc(count)
        if graph.refused == count or graph.refused % 1000 < count:  # first, then 1 in 1000
            log.warning("room %s is full (max_nodes=%d, max_edges=%d): %d new fact(s) "
                        "refused so far", name, self.config.graph.max_nodes,
                        self.config.graph.max_edges,
                        graph.refused)

    async def shutdown(self) -> None:
        """Stop accepting; finish producers (flush, infer, `done`); close viewers; stop the model."""
        self._accepting = False
        if self._server is not None:
            self._server.close(close_connections=False)
        sessions = list(self.sessions)
        await asyncio.gather(*(s.finish(connected=True) for s in sessions if s.role == "producer"),
                             return_exceptions=True)
        for session in sessions:
            if session.role != "producer":
                await session.ws.close(CloseCode.GOING_AWAY, "server shutting down")
        if self._server is not None:
            await self._server.wait_closed()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        await self.engine.close()
        if self.publisher is not None:
            await self.publisher.close()  # queued messages, final snapshots, `offline`
        if self.store is not None:
            self.store.close()  # every batch was committed as it came; this only lets go
        self.stopped.set()

    async def run_until_signal(self) -> int:
        """Serve until SIGINT/SIGTERM (graceful) or a failed model load (exit status 1)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        log.info("listening on http://%s:%d/", self.config.host, self.port)
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self.stopped.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        failed = self.engine.load_error is not None
        log.info("shutting down")
        await self.shutdown()
        return 1 if failed else 0

    # -- WebSocket --------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        # Only /v1/stream gets here: `_http` answers every other path before the handshake.
        if not self._accepting or len(self.sessions) >= self.config.max_sessions:
            self.metrics.sessions_rejected.labels("full").inc()
            await ws.close(CloseCode.TRY_AGAIN_LATER, "server full, try later")
            return
        session = self._session(ws)
        self.sessions.add(session)
        try:
            async for message in ws:
                await session.on_message(message)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("session %s failed", session.id)
            await ws.close(CloseCode.SERVER_ERROR, "server error")
        finally:
            await session.close()
            self.sessions.discard(session)

    def _session(self, ws: ServerConnection) -> Session:
        cfg = self.config
        protocol = SessionProtocol(uuid.uuid4().hex[:12], self.config.vad,
                                   Limits(cfg.max_message_bytes, cfg.vad.max_utterance_s))
        return Session(ws, protocol, self.engine, self.rooms.open, self.metrics,
                       SessionSettings(cfg.send_queue, cfg.session_queue, cfg.lag_warning_s))

    # -- HTTP -------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        token = self.config.token
        if not token:
            return True
        header = request.headers.get("Authorization", "")
        offered = header[7:] if header.startswith("Bearer ") else ""
        if not offered:
            offered = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        return hmac.compare_digest(offered.encode(), token.encode())

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self._authorized(request):
            self.metrics.sessions_rejected.labels("auth").inc()
            return _json(HTTPStatus.UNAUTHORIZED, {"error": "unauthorized",
                                                  "message": "a valid bearer token is required"},
                         [("WWW-Authenticate", 'Bearer realm="streamre"')])
        path = unquote(urlsplit(request.path).path)
        if path == STREAM_PATH:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return None  # on to the WebSocket handshake
            return _json(HTTPStatus.UPGRADE_REQUIRED,
                         {"error": "upgrade_required", "message": "this path is a WebSocket"})
        if path == "/healthz":
            return self._healthz()
        if path == "/metrics":
            return _response(HTTPStatus.OK, self.metrics.render(), self.metrics.content_type)
        if path == "/v1/rooms":
            return _json(HTTPStatus.OK, [room.summary() for room in self.rooms])
        if path.startswith("/v1/rooms/") and path.endswith("/graph"):
            return self._room_graph(path[len("/v1/rooms/"):-len("/graph")], request)
        return self._static(path)

    def _healthz(self) -> Response:
        if self.engine.ready.is_set():
            extractor = self.engine.extractor
            return _json(HTTPStatus.OK, {"status": "ok", "model": extractor.name,
                                         "device": extractor.device})
        state = "error" if self.engine.load_error is not None else "loading"
        return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": state})

    def _room_graph(self, name: str, request: Request) -> Response:
        room = self.rooms.get(name) if valid_room(name) else None
        if room is None:
            return _json(HTTPStatus.NOT_FOUND, {"error": "no_such_room", "room": name})
        graph = room.graph
        fmt = parse_qs(urlsplit(request.path).query).get("format", ["json"])[0]
        if fmt == "graphml":
            return _response(HTTPStatus.OK, graph.to_graphml().encode(),
                             "application/graphml+xml; charset=utf-8")
        if fmt != "json":
            return _json(HTTPStatus.BAD_REQUEST, {"error": "bad_format",
                                                 "message": "format is json or graphml"})
        return _json(HTTPStatus.OK, graph.to_json())

    def _static(self, path: str) -> Response:
        if path.startswith("/vendor/"):
            return _vendor_response(path[len("/vendor/"):])
        name = "index.html" if path == "/" else path.lstrip("/")
        root = WEB_CLIENT_DIR.resolve()
        file = (root / name).resolve()
        if root not in file.parents or not file.is_file():
            return _json(HTTPStatus.NOT_FOUND, {"error": "not_found", "path": path})
        return _file_response(file, file.name)


# Third-party browser code, installed from the npm registry by `npm ci` in clients/web.
VENDOR_FILES = {
    "cytoscape.min.js": "cytoscape/dist/cytoscape.min.js",
    "cytoscape.LICENSE.txt": "cytoscape/LICENSE",
}


def _host_id() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "streamre"


def _vendor_response(name: str) -> Response:
    if name not in VENDOR_FILES:
        return _json(HTTPStatus.NOT_FOUND, {"error": "not_found", "path": "/vendor/" + name})
    file = WEB_CLIENT_DIR / "node_modules" / VENDOR_FILES[name]
    if not file.is_file():
        return _json(HTTPStatus.NOT_FOUND, {
            "error": "not_installed",
            "message": "run `npm ci` in clients/web (./dev.sh serve does) to install " + name})
    return _file_response(file, name)


def _file_response(file: Path, name: str) -> Response:
    """A file's bytes, typed by the name it is served under."""
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    return _response(HTTPStatus.OK, file.read_bytes(), kind)


def _response(status: HTTPStatus, body: bytes, content_type: str,
              extra: list[tuple[str, str]] = ()) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close"), *extra])
    return Response(status.value, status.phrase, headers, body)


def _json(status: HTTPStatus, payload, extra: list[tuple[str, str]] = ()) -> Response:
    return _response(status, json.dumps(payload).encode(), "application/json", extra)
