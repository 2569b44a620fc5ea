"""A client's text frames taken apart safely: JSON with a depth limit, the room name, refusals
(answered with `error`, some then closing), and the token bucket of the text rate."""

from __future__ import annotations

import json

from streamre.protocol.wire import MAX_JSON_DEPTH, MAX_SPEAKER_CHARS, ROOM_RULE, CloseCode, valid_room
from streamre.textre.sentences import split_sentences

TEXT_BURST = 10  # text messages a session may send at once before the rate applies


class RateLimit:
    """A token bucket: `burst` at once, then `per_second` on average."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
        self._tokens, self._at = float(burst), None

    def take(self, now: float) -> bool:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Refusal(Exception):
    """A message the protocol answers with `error`; with `fatal`, then a close (4400 unless
    said otherwise)."""

    def __init__(self, code: str, message: str, fatal: bool = False,
                 close_code: CloseCode = CloseCode.PROTOCOL_VIOLATION) -> None:
        super().__init__(message)
        self.code, self.fatal, self.close_code = code, fatal, close_code


def parse(text: str) -> dict:
    """A client's message: a JSON object with a string `type`."""
    message = parse_object(text)
    if not isinstance(message.get("type"), str):
        raise Refusal("bad_message", "a message must be a JSON object with a string 'type'")
    return message


def parse_object(text: str | bytes) -> dict:
    """A JSON object, nested at most MAX_JSON_DEPTH deep."""
    message = parse_json(text)
    if not isinstance(message, dict):
        raise Refusal("bad_message", "a message must be a JSON object")
    return message


def parse_json(text: str | bytes) -> object:
    """Any JSON value, UTF-8, nested at most MAX_JSON_DEPTH deep."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("bad_json", "JSON must be UTF-8") from None
    if nested_deeper(text, MAX_JSON_DEPTH):
        raise Refusal("bad_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError:
        raise Refusal("bad_json", "not valid JSON") from None


def note(message: dict, max_chars: int, speaker: str | None = None) -> tuple[list[str], str | None]:
    """A `text` message's (or a posted note's) sentences and speaker (`speaker` unless it
    names one); Refusal for empty, oversized or mistyped fields."""
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Refusal("bad_text", "text must be a non-empty string")
    if len(text) > max_chars:
        raise Refusal("text_too_long", f"a text carries at most {max_chars} characters")
    speaker = message.get("speaker", speaker)
    if speaker is not None and (not isinstance(speaker, str) or len(speaker) > MAX_SPEAKER_CHARS):
        raise Refusal("bad_speaker", f"speaker must be a string of at most "
                      f"{MAX_SPEAKER_CHARS} chars")
    return split_sentences(text), speaker


def room_name(message: dict, fatal: bool) -> str:
    room = message.get("room", "default")
    if not valid_room(room):
        raise Refusal("bad_room", ROOM_RULE, fatal)
    return room


def nested_deeper(text: str, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep (brackets inside strings do not
    count); the count first, so ordinary messages are not scanned."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False
