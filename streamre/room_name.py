"""The room-name rule, one for the WebSocket, HTTP, the graph journal and MQTT.

A room name becomes a storage key, a URL path segment and an MQTT topic level, so it is
matched whole and allows none of '/', '+', '#', whitespace or control characters.
"""

from __future__ import annotations

import re
from typing import Any

# Matched whole (a `$` would let a final newline through).
ROOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ROOM_RULE = ("room must be 1-64 characters: letters, digits, '_', '.', '-' "
             "(starting with a letter or digit)")


def valid_room(name: Any) -> bool:
    return isinstance(name, str) and ROOM_NAME.fullmatch(name) is not None


def check_room(name: Any) -> str:
    """`name` if it is a valid room name; ValueError with the rule otherwise."""
    if not valid_room(name):
        raise ValueError(f"{ROOM_RULE}; got {name!r}")
    return name
