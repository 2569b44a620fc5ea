"""`streamre serve`: HTTP routes and the streaming WebSocket on one port, one ASGI application
(Starlette) under uvicorn, whose WebSocket protocol is the `websockets` package's.

The server owns the rooms, the inference engine and the metrics, and answers what the HTTP
routes read (`streamre.server.http.ServerView`); each WebSocket connection gets a `Session`
(`streamre.server.websocket`). Lifecycle: `start()` listens at once and loads the model in the background
(`/healthz` answers 200 only once it is loaded and warmed up); `shutdown()` stops accepting,
finishes every producer (flush, inference, `done`), closes viewers, then stops the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from http import HTTPStatus
from pathlib import Path
from typing import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from streamre.config import ServeConfig
from streamre.graph import RoomGraph
from streamre.graph.store import DB_NAME, GraphStore
from streamre.inference.engine import InferenceEngine
from streamre.inference.seam import Reader, TripletExtractor
from streamre.inference.speech_path import SpeechPath
from streamre.cluster.link import ClusterLink
from streamre.mqtt.publisher import MqttPublisher
from streamre.protocol import STREAM_PATH, CloseCode, Role
from streamre.server import brokered
from streamre.server.admission import Admission
from streamre.server.corrections import Corrections
from streamre.server.http import BearerAuth, routes
from streamre.server.metrics import Metrics
from streamre.server.names import RoomNames
from streamre.server.notes import Notes
from streamre.server.record import Retention
from streamre.server.rooms import Rooms
from streamre.server.session import Session
from streamre.server.voices import voice_encoder
from streamre.server.websocket import StreamEndpoint

log = logging.getLogger("streamre.server")


class StreamServer:
    def __init__(self, config: ServeConfig,
                 load_extractor: Callable[[], TripletExtractor] | None = None,
                 load_text: Callable[[], Reader | None] | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        # Settings that cannot work together fail here, before the server listens.
        path = SpeechPath(config, config, on_guard=lambda guard: self.metrics.hearing_guards.labels(
            guard).inc())
        if load_text is None and path.text_source is not None:
            load_text = path.load_text
        self.store: GraphStore | None = None
        self.publisher: MqttPublisher | None = None
        self.link: ClusterLink | None = None  # to the other instances, with --cluster
        self.rooms: Rooms | None = None
        self.sessions: dict[Session, None] = {}  # in the order they connected
        self.engine = InferenceEngine(
            load_extractor or path.load_speech, max_batch=config.max_batch,
            gather_ms=config.gather_ms, metrics=self.metrics,
            live_producers=lambda: sum(1 for s in self.sessions if s.role == Role.PRODUCER),
            load_text=load_text, load_voices=voice_encoder(config))
        self.text_per_minute = config.text_per_minute if self.engine.takes_text else 0
        self.notes: Notes | None = None
        self.room_names: RoomNames | None = None
        self.corrections: Corrections | None = None
        self.admission: Admission | None = None
        self.endpoint: StreamEndpoint | None = None  # the WebSocket's
        self._uvicorn: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._serving: asyncio.Task | None = None
        self._loading: asyncio.Task | None = None
        self._sweeping: asyncio.Task | None = None
        self.stopped = asyncio.Event()  # set when the model failed to load, or on shutdown

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.metrics.event_loop_tasks.set_function(lambda: len(asyncio.all_tasks(loop)))
        self.store = GraphStore(Path(self.config.data_dir) / DB_NAME)
        self.store.save_settings(self.config.graph)
        self.publisher = brokered.publisher(self.config, self.metrics, lambda: self.rooms)
        node = brokered.cluster_node(self.config)
        self.rooms = Rooms(self.store, self.config.graph, self.publisher,
                           self.metrics.facts_refused.inc,
                           self.config.max_rooms, self.config.room_idle_s, node=node)
        self.notes = Notes(self.engine, self.rooms, self.metrics, self.config.max_text_chars,
                           self.text_per_minute)
        self.admission = Admission(self.config, self.sessions, self.rooms, self.metrics)
        self.room_names = RoomNames(self.rooms, self.engine)
        self.corrections = Corrections(self.engine, self.rooms, self.metrics,
                                       self.config.max_text_chars)
        self.endpoint = StreamEndpoint(self.config, self.engine, self.rooms, self.room_names,
                                       self.admission, self.metrics, self.sessions,
                                       self.text_per_minute)
        restored = self.rooms.restore()
        if restored:
            log.info("restored %d room(s) from %s", len(restored), self.store.path)
        if self.publisher is not None:
            self.publisher.start(restored)
        if node is not None:
            self.link = brokered.join_cluster(self.config, node, self.store, self.rooms,
                                              self.publisher, self.metrics)
        await self._listen()
        self._loading = asyncio.create_task(self._load_model())
        self._sweeping = asyncio.create_task(self._sweep_rooms())

    def application(self) -> Starlette:
        """HTTP routes and the WebSocket, behind the token check."""
        return Starlette(
            routes=[WebSocketRoute(STREAM_PATH, self.endpoint.serve), *routes(self)],
            middleware=[Middleware(BearerAuth, token=self.config.token,
                                   on_refused=self.metrics.sessions_rejected.labels("auth").inc)])

    async def _listen(self) -> None:
        config = uvicorn.Config(
            self.application(), host=self.config.host, port=self.config.port, lifespan="off",
            ws="websockets-sansio", ws_max_size=self.config.max_message_bytes,
            ws_ping_interval=20, ws_ping_timeout=20, log_config=None, access_log=False,
            server_header=False, timeout_graceful_shutdown=10)
        self._socket = config.bind_socket()  # bound now, so port 0 is known at once
        self._uvicorn = _Uvicorn(config)
        self._serving = asyncio.create_task(self._uvicorn.serve(sockets=[self._socket]),
                                            name="uvicorn")
        while not self._uvicorn.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it
                raise OSError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

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
        return self._socket.getsockname()[1]

    async def shutdown(self) -> None:
        """Stop accepting; finish producers (flush, infer, `done`); close viewers; stop the model."""
        if self.endpoint is not None:
            self.endpoint.accepting = False
        for listener in self._uvicorn.servers if self._uvicorn is not None else []:
            listener.close()  # no new connections; open ones stay for now
        sessions = list(self.sessions)
        await asyncio.gather(*(s.finish(connected=True) for s in sessions if s.role == Role.PRODUCER),
                             return_exceptions=True)
        for session in sessions:
            if session.role != Role.PRODUCER:
                await session.ws.close(CloseCode.GOING_AWAY, "server shutting down")
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            await self._serving
        for task in (self._loading, self._sweeping):
            if task is not None and not task.done():
                task.cancel()
        await self.engine.close()
        if self.link is not None:
            await self.link.close()  # `offline`, before the outbox's last messages
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

    async def _sweep_rooms(self) -> None:
        retention = Retention(self.store, self.config.transcript_retention_days)
        while True:
            retention.apply_when_due()
            await asyncio.sleep(min(max(self.config.room_idle_s / 2, 0.5), 30))
            gone = self.rooms.evict_idle()
            if gone:
                log.debug("forgot %d idle empty room(s)", len(gone))


    # -- what the HTTP routes read (streamre.server.http.ServerView) ------------------------

    def health(self) -> tuple[int, dict]:
        if self.engine.ready.is_set():
            extractor, reader = self.engine.extractor, self.engine.text_extractor
            return HTTPStatus.OK, {"status": "ok", "model": extractor.name,
                                   "asr": extractor.asr,
                                   "text_model": reader.name if reader is not None else None,
                                   "device": extractor.device}
        state = "error" if self.engine.load_error is not None else "loading"
        return HTTPStatus.SERVICE_UNAVAILABLE, {"status": state}

    def metrics_page(self) -> tuple[bytes, str]:
        return self.metrics.render(), self.metrics.content_type

    def room_summaries(self) -> list[dict]:
        return self.rooms.summaries()

    def room_graph(self, name: str) -> RoomGraph | None:
        return self.rooms.graph(name)

    async def post_note(self, room: str, body: bytes) -> tuple[int, dict]:
        return await self.notes.post(room, body)

    def note_limit(self) -> int:
        return self.notes.max_body_bytes

    def has_room(self, name: str) -> bool:
        return self.rooms.has_room(name)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its signal handlers: `run_until_signal` shuts down in its own
    order (producers finished first), and only then lets uvicorn close what is left."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

