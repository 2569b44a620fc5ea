"""How the HTTP routes answer (JSON or text bodies, never cached), and how they read a body."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.requests import Request
from starlette.responses import Response

from streamre.protocol import valid_room
from streamre.room_name import ROOM_RULE


def json_response(status: int, payload, headers: dict | None = None) -> Response:
    return body_response(status, json.dumps(payload).encode(), "application/json", headers)


def text_response(text: str, content_type: str, headers: dict | None = None) -> Response:
    """A 200 with UTF-8 text (a transcript file, minutes)."""
    return body_response(200, text.encode(), f"{content_type}; charset=utf-8", headers)


def body_response(status: int, body: bytes, content_type: str, headers: dict | None = None
                  ) -> Response:
    return Response(body, status, {"Cache-Control": "no-store", **(headers or {})},
                    media_type=content_type)


def refusal(status: int, code: str, message: str) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a refused request, as every route answers one."""
    return status, {"error": code, "message": message}


def refused_json(request: Request, room: str, what: str) -> Response | None:
    """The answer to a write with a bad room name or a body that is not JSON; None if fine."""
    if not valid_room(room):
        return json_response(HTTPStatus.BAD_REQUEST, {"error": "bad_room", "message": ROOM_RULE})
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return json_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {
            "error": "unsupported_media_type", "message": f"send {what} as application/json"})
    return None


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None past `limit` bytes (read no further than that)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
