"""What people fix, over HTTP (PROTOCOL 1.3): a corrected transcript line
(`PUT /v1/rooms/{room}/transcript/{session_id}/{segment_id}`), read again by the text extractor;
one entity merged into another or renamed (`POST /v1/rooms/{room}/entities/merge`); a voice the
server told apart, named (`PUT /v1/rooms/{room}/voices/{session_id}/{voice}`); and what the
room learnt from corrections and merges (`GET`/`DELETE /v1/rooms/{room}/learnt`).
`Corrections` carries each out on the rooms (`Room.change`, which journals, announces and
learns); `routes` are its HTTP side.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamre.graph import Mention
from streamre.graph.entries import Change, Correction, EntityMerge, VoiceName
from streamre.hearing.vocabulary import MAX_PHRASE_CHARS
from streamre.inference.engine import InferenceEngine
from streamre.protocol import valid_room
from streamre.protocol.parsing import TEXT_BURST, RateLimit, Refusal, parse_object
from streamre.protocol.wire import MAX_SPEAKER_CHARS
from streamre.server.metrics import Metrics
from streamre.server.responses import json_response, read_body, refusal, refused_json
from streamre.server.rooms import Rooms, TooManyRooms

log = logging.getLogger("streamre.server")

CHANGES_PER_MINUTE = 120  # corrections and merges, server-wide: people type them


class Corrections:
    """Args:
        engine: where a corrected line is read again.
        rooms: the server's rooms.
        metrics: the server's counters.
        max_chars: the longest line a person may write (a text message's limit).
    """

    def __init__(self, engine: InferenceEngine, rooms: Rooms, metrics: Metrics, max_chars: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.rooms, self.metrics, self.max_chars = engine, rooms, metrics, max_chars
        self._rate = RateLimit(CHANGES_PER_MINUTE / 60, TEXT_BURST)
        self._clock = clock

    @property
    def max_body_bytes(self) -> int:
        return 4 * self.max_chars + 1024  # UTF-8 text, escapes and the `by` field

    async def correct(self, room: str, session_id: str, segment_id: int, body: bytes
                      ) -> tuple[int, dict]:
        """(HTTP status, answer) for a corrected line: the line as it now reads, and the
        graph's version after it."""
        try:
            message = parse_object(body)
            text, by = self._text(message), _by(message)
        except Refusal as e:
            return refusal(HTTPStatus.BAD_REQUEST, e.code, str(e))
        found = self.rooms.store.transcript.line(room, session_id, segment_id) \
            if self.rooms.has_room(room) else None
        if found is None:
            return refusal(HTTPStatus.NOT_FOUND, "no_such_segment",
                            f"room {room!r} has no line {session_id}/{segment_id}")
        if not self.engine.takes_text:
            return refusal(HTTPStatus.SERVICE_UNAVAILABLE, "text_unavailable",
                            "this server takes no text (it has no text model)")
        refused = self._take_rate()
        if refused:
            return refused
        line = found[1]
        try:
            result = await self.engine.submit_text(session_id, text)
        except Exception as e:
            log.exception("could not read the correction of %s/%s", session_id, segment_id)
            self.metrics.errors.labels("inference_failed").inc()
            return refusal(HTTPStatus.INTERNAL_SERVER_ERROR, "inference_failed", str(e))
        mention = Mention(session_id, segment_id, line.speaker, text=text, source=line.source,
                          voice=line.voice)
        correction = Correction(mention, tuple(result.triplets), time.time(), by,
                                line.heard if line.heard is not None else line.text)
        return self._changed(room, correction, lambda: {
            "segment": self.rooms.store.transcript.line(room, session_id, segment_id)[1]
            .to_json()})

    async def merge(self, room: str, body: bytes) -> tuple[int, dict]:
        """(HTTP status, answer) for `{"from","into"}`: the graph's version after it."""
        try:
            message = parse_object(body)
            source, into = (_name(message, "from"), _name(message, "into"))
            by = _by(message)
        except Refusal as e:
            return refusal(HTTPStatus.BAD_REQUEST, e.code, str(e))
        graph = self.rooms.graph(room) if valid_room(room) else None
        if graph is None or graph.node_of(source) is None:
            return refusal(HTTPStatus.NOT_FOUND, "no_such_entity",
                            f"room {room!r} shows no entity {source!r}")
        refused = self._take_rate()
        if refused:
            return refused
        return self._changed(room, EntityMerge(source, into, time.time(), by), dict)

    def name_voice(self, room: str, session_id: str, voice: int, body: bytes
                   ) -> tuple[int, dict]:
        """(HTTP status, answer) for `{"speaker"}` naming one voice of a session: the name
        and how many lines it said so far (each now says it, as will its next ones)."""
        try:
            message = parse_object(body)
            speaker = _name(message, "speaker", MAX_SPEAKER_CHARS, "bad_speaker")
            by = _by(message)
        except Refusal as e:
            return refusal(HTTPStatus.BAD_REQUEST, e.code, str(e))
        said = self.rooms.store.transcript.voice_lines(room, session_id, voice) \
            if self.rooms.has_room(room) else []
        if not said:
            return refusal(HTTPStatus.NOT_FOUND, "no_such_voice",
                            f"room {room!r} has no line of voice {voice} in session "
                            f"{session_id!r}")
        refused = self._take_rate()
        if refused:
            return refused
        return self._changed(room, VoiceName(session_id, voice, speaker, time.time(), by),
                             lambda: {"speaker": speaker, "lines": len(said)})

    def learnt(self, room: str) -> dict:
        return {"room": room, "learnt": [p.to_json() for p in self.rooms.learnt(room)]}

    def forget(self, room: str, heard: str | None, meant: str | None) -> tuple[int, dict]:
        """Forget what the room learnt: the pairs of these heard words or this name, or
        all; the count and what is left."""
        try:
            gone = self.rooms.open(room).forget_learnt(heard, meant) \
                if self.rooms.has_room(room) else 0
        except TooManyRooms as e:
            return refusal(HTTPStatus.SERVICE_UNAVAILABLE, "too_many_rooms", str(e))
        return HTTPStatus.OK, {**self.learnt(room), "forgotten": gone}

    def _changed(self, room: str, change: Change, answer: Callable[[], dict]
                 ) -> tuple[int, dict]:
        """The change carried out on its room (opened if need be): 200 with `answer()` and
        the graph's version after it, or why not."""
        try:
            target = self.rooms.open(room)
            target.change(change)
        except TooManyRooms as e:
            return refusal(HTTPStatus.SERVICE_UNAVAILABLE, "too_many_rooms", str(e))
        except Exception as e:
            log.exception("could not journal a change of room %s", room)
            self.metrics.errors.labels("journal_failed").inc()
            return refusal(HTTPStatus.INTERNAL_SERVER_ERROR, "journal_failed", str(e))
        self.metrics.changes.labels(
            "correction" if isinstance(change, Correction) else
            "voice" if isinstance(change, VoiceName) else "merge").inc()
        return HTTPStatus.OK, {**answer(), "version": target.graph.version}

    def _text(self, message: dict) -> str:
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Refusal("bad_text", "text must be a non-empty string")
        if len(text) > self.max_chars:
            raise Refusal("bad_text", f"a line carries at most {self.max_chars} characters")
        return " ".join(text.split())

    def _take_rate(self) -> tuple[int, dict] | None:
        if self._rate.take(self._clock()):
            return None
        return refusal(HTTPStatus.TOO_MANY_REQUESTS, "change_rate",
                        "too many corrections; try again in a few seconds")


def _by(message: dict) -> str | None:
    by = message.get("by")
    if by is not None and (not isinstance(by, str) or len(by) > MAX_SPEAKER_CHARS):
        raise Refusal("bad_by", f"by must be a string of at most {MAX_SPEAKER_CHARS} chars")
    if by is None:
        return None
    return " ".join(by.split()) or None


def _name(message: dict, field: str, most: int = MAX_PHRASE_CHARS, code: str = "bad_merge"
          ) -> str:
    """`message[field]`, a name of 1 to `most` characters, its spaces made single; `Refusal`
    with `code` otherwise."""
    name = message.get(field)
    if not isinstance(name, str) or not name.strip() or len(name) > most:
        raise Refusal(code, f"{field} must be a name of 1 to {most} characters")
    return " ".join(name.split())


def routes(corrections: Corrections) -> list[Route]:
    async def correct(request: Request) -> Response:
        name = request.path_params["room"]
        refused = refused_json(request, name, "the corrected line")
        if refused is not None:
            return refused
        body = await read_body(request, corrections.max_body_bytes)
        if body is None:  # PROTOCOL 1.3: a line too long is a bad text, however long
            return json_response(HTTPStatus.BAD_REQUEST, {
                "error": "bad_text", "message": f"a line carries at most "
                f"{corrections.max_chars} characters"})
        p = request.path_params
        return json_response(*await corrections.correct(name, p["session_id"], p["segment_id"],
                                                        body))

    async def small_body(request: Request, what: str, code: str) -> bytes | Response:
        """A change's JSON body of at most 4096 bytes, or why it is refused."""
        refused = refused_json(request, request.path_params["room"], what)
        if refused is not None:
            return refused
        body = await read_body(request, 4096)
        if body is None:
            return json_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
                "error": code, "message": f"{what} is at most 4096 bytes"})
        return body

    async def merge(request: Request) -> Response:
        body = await small_body(request, "a merge", "bad_merge")
        if isinstance(body, Response):
            return body
        return json_response(*await corrections.merge(request.path_params["room"], body))

    async def name_voice(request: Request) -> Response:
        body = await small_body(request, "a voice's name", "bad_speaker")
        if isinstance(body, Response):
            return body
        p = request.path_params
        return json_response(*corrections.name_voice(p["room"], p["session_id"], p["voice"],
                                                     body))

    async def learnt(request: Request) -> Response:
        name = request.path_params["room"]
        if not valid_room(name):
            return refused_json(request, name, "")
        if request.method == "GET":
            return json_response(HTTPStatus.OK, corrections.learnt(name))
        query = request.query_params
        return json_response(*corrections.forget(name, query.get("heard"), query.get("meant")))

    return [
        Route("/v1/rooms/{room:path}/transcript/{session_id}/{segment_id:int}", correct,
              methods=["PUT"]),
        Route("/v1/rooms/{room:path}/entities/merge", merge, methods=["POST"]),
        Route("/v1/rooms/{room:path}/voices/{session_id}/{voice:int}", name_voice,
              methods=["PUT"]),
        Route("/v1/rooms/{room:path}/learnt", learnt, methods=["GET", "DELETE"]),
    ]
