"""The HTTP side of `streamre serve`, as Starlette routes: health, metrics, rooms, room graphs
(now and as they were), transcripts and minutes (`streamre.server.record`), a room's names
(`streamre.server.names`: vocabularies, contexts), notes, corrections and merges
(`streamre.server.corrections`), and the browser client's files;
plus the bearer-token check every request passes first.

The routes read the server through a small view (`ServerView`), never the other way round.
"""

from __future__ import annotations

import hmac
import mimetypes
from http import HTTPStatus
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from streamre import WEB_CLIENT_DIR
from streamre.protocol import STREAM_PATH, valid_room
from streamre.server import corrections, names, record
from streamre.server.responses import body_response, json_response, read_body, refused_json

# Third-party browser code, installed from the npm registry by `npm ci` in clients/web.
VENDOR_FILES = {
    "cytoscape.min.js": "cytoscape/dist/cytoscape.min.js",
    "cytoscape.LICENSE.txt": "cytoscape/LICENSE",
}


class ServerView(Protocol):
    """What the routes need to know of the server."""

    def health(self) -> tuple[int, dict]: ...

    def metrics_page(self) -> tuple[bytes, str]: ...

    def room_summaries(self) -> list[dict]: ...

    async def post_note(self, room: str, body: bytes) -> tuple[int, dict]: ...

    def note_limit(self) -> int: ...  # the largest note body, in bytes

    def room_graph(self, name: str): ...  # a RoomGraph, or None

    room_names: names.RoomNames  # vocabularies, contexts and what each room expects

    corrections: corrections.Corrections  # corrected lines, merged entities, what was learnt

    store: object  # the GraphStore: each room's facts and transcript, read by `record`

    def has_room(self, name: str) -> bool: ...  # in memory or journaled


def routes(server: ServerView) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return json_response(*server.health())

    async def metrics(request: Request) -> Response:
        return body_response(HTTPStatus.OK, *server.metrics_page())

    async def rooms(request: Request) -> Response:
        return json_response(HTTPStatus.OK, server.room_summaries())

    async def room_graph(request: Request) -> Response:
        name = request.path_params["room"]
        if "version" in request.query_params or "at" in request.query_params:
            try:
                graph = record.graph_then(request, server.store, server.has_room)
            except record.BadQuery as e:
                return json_response(*e.answer())
        else:
            graph = server.room_graph(name) if valid_room(name) else None
        if graph is None:
            return json_response(HTTPStatus.NOT_FOUND, {"error": "no_such_room", "room": name})
        fmt = request.query_params.get("format", "json")
        if fmt == "graphml":
            return body_response(HTTPStatus.OK, graph.to_graphml().encode(),
                             "application/graphml+xml; charset=utf-8")
        if fmt != "json":
            return json_response(HTTPStatus.BAD_REQUEST, {"error": "bad_format",
                                                         "message": "format is json or graphml"})
        return json_response(HTTPStatus.OK, graph.to_json())

    async def notes(request: Request) -> Response:
        name = request.path_params["room"]
        refused = refused_json(request, name, "the note")
        if refused is not None:
            return refused
        body = await read_body(request, server.note_limit())
        if body is None:
            return json_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
                "error": "text_too_long", "message": f"a note body is at most "
                f"{server.note_limit()} bytes"})
        return json_response(*await server.post_note(name, body))

    async def stream_over_http(request: Request) -> Response:
        return json_response(HTTPStatus.UPGRADE_REQUIRED,
                             {"error": "upgrade_required", "message": "this path is a WebSocket"})

    return [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/v1/rooms", rooms),
        Route("/v1/rooms/{room:path}/graph", room_graph),
        Route("/v1/rooms/{room:path}/notes", notes, methods=["POST"]),
        *record.routes(lambda: server.store, server.has_room, server.room_graph),
        *names.routes(server.room_names),
        *corrections.routes(server.corrections),
        Route(STREAM_PATH, stream_over_http),
        Route("/vendor/{name:path}", vendor_file),
        Route("/{path:path}", client_file),
    ]


MAX_PATH_CHARS, MAX_NAME_CHARS = 1024, 255  # a static path, and one name in it


async def client_file(request: Request) -> Response:
    """The browser client's files; `/` is its page. The path is checked before any file
    system call: a NUL byte is a 404, an over-long path or name a 414."""
    path = request.url.path
    if "\x00" in path:
        return json_response(HTTPStatus.NOT_FOUND, {"error": "not_found", "path": path})
    if len(path) > MAX_PATH_CHARS or any(len(n) > MAX_NAME_CHARS for n in path.split("/")):
        return json_response(HTTPStatus.REQUEST_URI_TOO_LONG,
                             {"error": "uri_too_long", "message": "no file has so long a name"})
    name = "index.html" if path == "/" else path.lstrip("/")
    root = WEB_CLIENT_DIR.resolve()
    file = (root / name).resolve()
    if root not in file.parents or not file.is_file():
        return json_response(HTTPStatus.NOT_FOUND, {"error": "not_found", "path": path})
    return _file_response(file, file.name)


async def vendor_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in VENDOR_FILES:
        return json_response(HTTPStatus.NOT_FOUND, {"error": "not_found",
                                                    "path": "/vendor/" + name})
    file = WEB_CLIENT_DIR / "node_modules" / VENDOR_FILES[name]
    if not file.is_file():
        return json_response(HTTPStatus.NOT_FOUND, {
            "error": "not_installed",
            "message": "run `npm ci` in clients/web (./dev.sh serve does) to install " + name})
    return _file_response(file, name)


def _file_response(file: Path, name: str) -> Response:
    """A file's bytes, typed by the name it is served under."""
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    return body_response(HTTPStatus.OK, file.read_bytes(), kind)


class BearerAuth:
    """ASGI middleware: with a token set, every HTTP request and WebSocket handshake must
    carry it, once (`Authorization: Bearer …`, or `?token=…`); others get 401."""

    def __init__(self, app: ASGIApp, token: str, on_refused=lambda: None) -> None:
        self.app, self.token, self.on_refused = app, token, on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.token \
                or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        self.on_refused()
        refusal = json_response(HTTPStatus.UNAUTHORIZED,
                                {"error": "unauthorized",
                                 "message": "a valid bearer token is required"},
                                {"WWW-Authenticate": 'Bearer realm="streamre"'})
        if scope["type"] == "http":
            await refusal(scope, receive, send)
        else:
            await WebSocket(scope, receive, send).send_denial_response(refusal)

    def _authorized(self, scope: Scope) -> bool:
        """Exactly one token offered, and the right one: two `token` parameters, two
        Authorization headers, or a header and a parameter, are refused even if one is right."""
        headers = [v.decode("latin-1") for k, v in scope.get("headers") or []
                   if k == b"authorization"]
        query = scope.get("query_string", b"").decode("latin-1")
        offered = [h[7:] for h in headers if h.startswith("Bearer ")] + \
            parse_qs(query, keep_blank_values=True).get("token", [])
        if len(offered) != 1 or len(headers) > 1:
            return False
        return hmac.compare_digest(offered[0].encode(), self.token.encode())
