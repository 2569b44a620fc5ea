"""A room's names over HTTP and `start`: its vocabulary (`GET`/`PUT …/vocabulary`), the
meeting's context (`GET`/`PUT …/context`, `start.context`) and every name the room expects
with where it came from (`GET …/names`). `RoomNames` carries each out on the rooms; `routes`
are its HTTP side."""

from __future__ import annotations

from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamre.hearing.names import MAX_CONTEXT_BYTES, BadContext, check_context
from streamre.hearing.vocabulary import BadVocabulary
from streamre.inference.engine import InferenceEngine
from streamre.protocol import valid_room
from streamre.protocol.parsing import Refusal, parse_json
from streamre.room_name import ROOM_RULE
from streamre.server.responses import json_response, read_body, refused_json
from streamre.server.rooms import Rooms, TooManyRooms

# 500 phrases of 64 characters, each up to 4 bytes in UTF-8 or 6 as a JSON escape, and commas.
MAX_VOCABULARY_BYTES = 256 * 1024


class RoomNames:
    """Args:
        rooms: the server's rooms (a write may open one).
        engine: where a context's names are found (its reader's tagger).
    """

    def __init__(self, rooms: Rooms, engine: InferenceEngine) -> None:
        self.rooms, self.engine = rooms, engine

    def vocabulary(self, name: str) -> list[str]:
        return list(self.rooms.vocabulary(name))

    def set_vocabulary(self, name: str, body: bytes) -> tuple[int, object]:
        """PUT's answer: the room's vocabulary as kept, or why not."""
        try:
            phrases = self.rooms.set_vocabulary(name, parse_json(body))
        except Refusal as e:
            return HTTPStatus.BAD_REQUEST, {"error": e.code, "message": str(e)}
        except BadVocabulary as e:
            return HTTPStatus.BAD_REQUEST, {"error": "bad_vocabulary", "message": str(e)}
        except TooManyRooms as e:
            return _too_many(e)
        return HTTPStatus.OK, list(phrases)

    def context(self, name: str) -> dict:
        text, names = self.rooms.context(name)
        return {"room": name, "text": text, "names": list(names)}

    async def set_context(self, name: str, body: bytes | str) -> tuple[int, dict]:
        """PUT's answer (and `start.context`'s): the context as kept with its names, or why
        not. The names are found before the room changes: a bad body changes nothing."""
        try:
            text = check_context(body)
        except BadContext as e:
            return HTTPStatus.BAD_REQUEST, {"error": "bad_context", "message": str(e)}
        names = await self.engine.context_names(text) if text.strip() else []
        try:
            self.rooms.open(name).set_context(text if text.strip() else "", names)
        except TooManyRooms as e:
            return _too_many(e)
        return HTTPStatus.OK, self.context(name)

    def expected(self, name: str) -> dict:
        return {"room": name, "names": [n.to_json() for n in self.rooms.expected(name)]}


def _too_many(e: TooManyRooms) -> tuple[int, dict]:
    return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too_many_rooms", "message": str(e)}


def routes(names: RoomNames) -> list[Route]:
    async def vocabulary(request: Request) -> Response:
        name = request.path_params["room"]
        if request.method == "GET":
            return json_response(HTTPStatus.OK, names.vocabulary(name)) if valid_room(name) \
                else _bad_room()
        refused = refused_json(request, name, "the vocabulary")
        if refused is not None:
            return refused
        body = await read_body(request, MAX_VOCABULARY_BYTES)
        if body is None:
            return json_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
                "error": "bad_vocabulary",
                "message": f"a vocabulary body is at most {MAX_VOCABULARY_BYTES} bytes"})
        return json_response(*names.set_vocabulary(name, body))

    async def context(request: Request) -> Response:
        name = request.path_params["room"]
        if not valid_room(name):
            return _bad_room()
        if request.method == "GET":
            return json_response(HTTPStatus.OK, names.context(name))
        body = await read_body(request, MAX_CONTEXT_BYTES)
        if body is None:
            return json_response(HTTPStatus.BAD_REQUEST, {
                "error": "bad_context",
                "message": f"a context is at most {MAX_CONTEXT_BYTES} bytes of UTF-8 text"})
        return json_response(*await names.set_context(name, body))

    async def expected(request: Request) -> Response:
        name = request.path_params["room"]
        if not valid_room(name):
            return _bad_room()
        return json_response(HTTPStatus.OK, names.expected(name))

    return [
        Route("/v1/rooms/{room:path}/vocabulary", vocabulary, methods=["GET", "PUT"]),
        Route("/v1/rooms/{room:path}/context", context, methods=["GET", "PUT"]),
        Route("/v1/rooms/{room:path}/names", expected),
    ]


def _bad_room() -> Response:
    return json_response(HTTPStatus.BAD_REQUEST, {"error": "bad_room", "message": ROOM_RULE})
