"""Typed text into a room's graph: one sentence read into a room (`read_sentence`, for the
WebSocket `text` message and for notes alike), and notes posted over HTTP
(`POST /v1/rooms/{room}/notes`), answered with the `triplets` of each of their sentences.

A note is checked like a WebSocket `text` message (the same limits and error codes), its
sentences go through the engine's text queue, and its facts join the room with their
provenance (source "text", the note's id as the session). Posted notes share one rate,
server-wide, since HTTP has no session to count them by.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from http import HTTPStatus
from typing import Callable

from streamre.graph import Mention
from streamre.inference.engine import InferenceEngine
from streamre.protocol import Failed, text_triplets_message
from streamre.protocol.parsing import TEXT_BURST, RateLimit, Refusal, note, parse_object
from streamre.server.metrics import Metrics
from streamre.server.responses import refusal
from streamre.server.room import Room, record_counted
from streamre.server.rooms import Rooms, TooManyRooms

log = logging.getLogger("streamre.server")

NOTES_RATE_SCALE = 10  # posted notes, server-wide, per session's worth of text rate


class Notes:
    """Args:
        engine: where sentences are read.
        rooms: the server's rooms (a note may open one).
        metrics: the server's counters.
        max_chars: the longest note.
        per_minute: a session's text rate; notes share ten times it (0: no text model).
    """

    def __init__(self, engine: InferenceEngine, rooms: Rooms, metrics: Metrics, max_chars: int,
                 per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.rooms, self.metrics = engine, rooms, metrics
        self.max_chars, self.per_minute, self._clock = max_chars, per_minute, clock
        self._rate = RateLimit(per_minute * NOTES_RATE_SCALE / 60, TEXT_BURST * NOTES_RATE_SCALE)

    @property
    def max_body_bytes(self) -> int:
        return 4 * self.max_chars + 1024  # UTF-8 text, escapes and the speaker field

    async def post(self, room: str, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON answer) for a note's body."""
        if self.per_minute == 0:
            return refusal(HTTPStatus.SERVICE_UNAVAILABLE, "text_unavailable",
                            "this server takes no text (it has no text model)")
        try:
            sentences, speaker = note(parse_object(body), self.max_chars)
        except Refusal as e:
            return refusal(HTTPStatus.BAD_REQUEST, e.code, str(e))
        if not self._rate.take(self._clock()):
            return refusal(HTTPStatus.TOO_MANY_REQUESTS, "text_rate",
                            "too many notes; try again in a few seconds")
        try:
            target = self.rooms.open(room)
        except TooManyRooms as e:
            return refusal(HTTPStatus.SERVICE_UNAVAILABLE, "too_many_rooms", str(e))
        note_id = "note-" + uuid.uuid4().hex[:12]
        asked = time.monotonic()
        answers = await asyncio.gather(*(  # one engine batch, answers in the note's order
            read_sentence(self.engine, self.metrics, target, note_id, i, sentence, speaker, asked)
            for i, sentence in enumerate(sentences)))
        return HTTPStatus.OK, {"room": room, "session_id": note_id, "sentences": list(answers)}


async def read_sentence(engine: InferenceEngine, metrics: Metrics, room: Room, session_id: str,
                        item_id: int, sentence: str, speaker: str | None,
                        asked_at: float) -> dict:
    """One typed sentence through the text extractor: its facts into `room` (source "text"),
    its `triplets` answer to MQTT, and that answer returned for its sender."""
    failed = None
    try:
        result = await engine.submit_text(session_id, sentence)
        triplets, names = result.triplets, result.names
    except Exception as e:
        log.exception("text inference failed for %s/%s", session_id, item_id)
        metrics.errors.labels("inference_failed").inc()
        names, triplets = (), []
        failed = Failed("inference_failed", str(e))
    mention = Mention(session_id, item_id, speaker, text=sentence, source="text")
    now = time.time()  # the sentence joins the transcript even when it could not be read
    failed = record_counted(room, metrics, mention, triplets, now, now) or failed
    answer = failed.fields() if failed else result.fields(asked_at)
    try:  # its names join what the room expects to hear, whether or not it stated a fact
        room.typed_names(list(names))
    except Exception:
        log.exception("could not keep the names of %s/%s", session_id, item_id)
    answer = text_triplets_message(item_id, sentence, **answer)
    room.report(session_id, answer)
    return answer
