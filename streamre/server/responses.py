"""How the HTTP routes answer: JSON or text bodies, never cached."""

from __future__ import annotations

import json

from starlette.responses import Response


def json_response(status: int, payload, headers: dict | None = None) -> Response:
    return body_response(status, json.dumps(payload).encode(), "application/json", headers)


def text_response(text: str, content_type: str, headers: dict | None = None) -> Response:
    """A 200 with UTF-8 text (a transcript file, minutes)."""
    return body_response(200, text.encode(), f"{content_type}; charset=utf-8", headers)


def body_response(status: int, body: bytes, content_type: str, headers: dict | None = None
                  ) -> Response:
    return Response(body, status, {"Cache-Control": "no-store", **(headers or {})},
                    media_type=content_type)
