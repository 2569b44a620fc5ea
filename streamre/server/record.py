"""The meeting's record over HTTP: a room's transcript, its graph as it was at a version or a
time, and its minutes. Everything here reads the journal (`GraphStore`); each bad query is a
4xx with a machine-readable `error`, never a 500.

- `GET /v1/rooms/{room}/transcript?format=json|srt|vtt|md&limit=N&after=CURSOR&speaker=S&edge=ID`
- `GET /v1/rooms/{room}/graph?version=N` or `?at=ISO-8601` (with `format` as the live graph)
- `GET /v1/rooms/{room}/export?format=md|json`
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamre.graph.room import RoomGraph
from streamre.graph.store import GraphStore
from streamre.graph.transcript import minutes, minutes_markdown, srt, transcript_markdown, vtt
from streamre.protocol import valid_room
from streamre.room_name import ROOM_RULE
from streamre.server.responses import json_response, text_response

log = logging.getLogger("streamre.server")

PAGE_DEFAULT, PAGE_MAX = 1000, 10000  # transcript lines in one answer
MAX_CURSOR = 2**62  # a cursor is a journal sequence number, an SQLite integer
TRANSCRIPT_FORMATS = {"json": "application/json", "srt": "application/x-subrip",
                      "vtt": "text/vtt", "md": "text/markdown"}


class BadQuery(Exception):
    """A query the record cannot answer: (HTTP status, error code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code

    def answer(self) -> tuple[int, dict]:
        return self.status, {"error": self.code, "message": str(self)}


def _room(request: Request, exists: Callable[[str], bool]) -> str:
    name = request.path_params["room"]
    if not valid_room(name):
        raise BadQuery(HTTPStatus.BAD_REQUEST, "bad_room", ROOM_RULE)
    if not exists(name):
        raise BadQuery(HTTPStatus.NOT_FOUND, "no_such_room", f"no room {name!r}")
    return name


def _format(request: Request, allowed, default: str) -> str:
    fmt = request.query_params.get("format", default)
    if fmt not in allowed:
        raise BadQuery(HTTPStatus.BAD_REQUEST, "bad_format",
                       f"format is one of {', '.join(allowed)}")
    return fmt


def _count(request: Request, name: str, default: int | None, least: int, most: int | None
           ) -> int | None:
    """A whole-number query parameter between `least` and `most`, or `default` if absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < least or \
            (most is not None and int(raw) > most):
        bounds = f"from {least} to {most}" if most is not None else f"of at least {least}"
        raise BadQuery(HTTPStatus.BAD_REQUEST, f"bad_{name}",
                       f"{name} must be a whole number {bounds}, got {raw[:32]!r}")
    return int(raw)


def parse_time(raw: str) -> float:
    """ISO-8601 (`2026-11-30T21:40:00Z`, or with an offset; none means UTC) to Unix seconds."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadQuery(HTTPStatus.BAD_REQUEST, "bad_time",
                       f"at must be an ISO-8601 time like 2026-11-30T21:40:00Z, "
                       f"got {raw[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def transcript_answer(request: Request, store: GraphStore, exists: Callable[[str], bool]
                      ) -> Response:
    """A page of a room's transcript, in its journal's order (a file's page in meeting time);
    `next` (or a `Link` header for the file formats) is the cursor of the page after it, null
    at the end."""
    room = _room(request, exists)
    fmt = _format(request, TRANSCRIPT_FORMATS, "json")
    limit = _count(request, "limit", PAGE_DEFAULT if fmt == "json" else PAGE_MAX, 1, PAGE_MAX)
    after = _count(request, "after", -1, 0, MAX_CURSOR)
    speaker, edge = request.query_params.get("speaker"), request.query_params.get("edge")
    rows = store.transcript.lines(room, after, limit + 1, speaker, edge)  # one more: is there a next?
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = str(rows[-1][0]) if more else None
    lines = [said for _, said in rows]
    if fmt == "json":
        return json_response(HTTPStatus.OK, {"room": room, "segments": [s.to_json() for s in lines],
                                             "next": cursor})
    headers = {}
    if cursor is not None:
        following = request.url.include_query_params(after=cursor)
        headers["Link"] = f'<{following}>; rel="next"'
    # Files read as the meeting went: in a cluster, lines learnt late (an outage caught up)
    # are journaled after later ones.
    lines.sort(key=lambda said: said.time)
    if fmt == "md":
        body = transcript_markdown(room, lines)
    else:
        body = (srt if fmt == "srt" else vtt)(lines, store.transcript.first_said(room))
    return text_response(body, TRANSCRIPT_FORMATS[fmt], headers)


def graph_then(request: Request, store: GraphStore, exists: Callable[[str], bool]
               ) -> RoomGraph:
    """The room's graph as it was at `?version=N` or `?at=TIME`, rebuilt from its journal."""
    room = _room(request, exists)
    version = _count(request, "version", None, 0, None)
    at = request.query_params.get("at")
    if version is not None and at is not None:
        raise BadQuery(HTTPStatus.BAD_REQUEST, "bad_query", "ask for a version or a time, not both")
    if version is not None:
        graph = store.load(room, version=version)
        if graph is None:
            raise BadQuery(HTTPStatus.NOT_FOUND, "no_such_version",
                           f"room {room!r} never had version {version}")
        return graph
    moment = parse_time(at)
    began = store.began(room)
    if began is None or moment < began:
        raise BadQuery(HTTPStatus.NOT_FOUND, "before_room",
                       f"room {room!r} has no record before {at}")
    return store.load(room, written_by=moment)


def export_answer(request: Request, store: GraphStore, exists: Callable[[str], bool],
                  graph: Callable[[str], RoomGraph | None]) -> Response:
    """The meeting's minutes: participants, facts by entity with their lines, the transcript."""
    room = _room(request, exists)
    fmt = _format(request, ("md", "json"), "md")
    found = graph(room)
    data = minutes(found.to_json(), [said for _, said in store.transcript.lines(room)],
                   found.settings.dedup_window_s)
    if fmt == "json":
        return json_response(HTTPStatus.OK, data)
    return text_response(minutes_markdown(data), "text/markdown")


def answered(handler: Callable[[], Response]) -> Response:
    """`handler`'s response, or the 4xx of the `BadQuery` it raised."""
    try:
        return handler()
    except BadQuery as e:
        return json_response(*e.answer())


def routes(store: Callable[[], GraphStore], exists: Callable[[str], bool],
           graph: Callable[[str], RoomGraph | None]) -> list[Route]:
    """The transcript and minutes routes (the graph's own route asks `graph_then`)."""
    async def transcript(request: Request) -> Response:
        return answered(lambda: transcript_answer(request, store(), exists))

    async def export(request: Request) -> Response:
        return answered(lambda: export_answer(request, store(), exists, graph))

    return [Route("/v1/rooms/{room:path}/transcript", transcript),
            Route("/v1/rooms/{room:path}/export", export)]


class Retention:
    """The retention rule: transcript lines older than `days` leave the journal (the graph's
    facts stay), looked for at most every `every_s`; `days` 0 keeps them forever."""

    def __init__(self, store: GraphStore, days: float, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.days, self.every_s, self._clock = store, days, every_s, clock
        self._due = 0.0

    def apply_when_due(self) -> int:
        """Apply the rule if it is time; how many lines went."""
        if not self.days or self._clock() < self._due:
            return 0
        self._due = self._clock() + self.every_s
        gone = self.store.transcript.forget_before(time.time() - self.days * 86400)
        if gone:
            log.info("deleted %d transcript line(s) older than %g day(s)", gone, self.days)
        return gone
