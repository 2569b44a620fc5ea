"""The sliding dedup window: is this sighting of a fact a new mention, or the same one again?

Sightings of the same canonical fact within `window_s` of the mention's last sighting are one
mention event (a model saying it twice for one utterance, a speaker repeating themselves, a
fuzzy-equal spelling). A sighting in the continuation of a forced split always merges with the
one in the segment it continues: the overlap made it twice. A plain synchronous object; it
forgets facts not seen for longer than the window, so its memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Open:
    first_t: float
    last_t: float
    segment: tuple[str, int]  # (session, segment index) of the last sighting


class DedupWindow:
    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._open: dict[str, _Open] = {}

    def observe(self, fact_id: str, t: float, session_id: str, segment_id: int,
                continues_previous: bool = False) -> bool:
        """Record a sighting; True when it starts a new mention event."""
        event = self._open.get(fact_id)
        near = event is not None and (
            event.first_t - self.window_s <= t <= event.last_t + self.window_s)
        overlap = event is not None and continues_previous and \
            event.segment == (session_id, segment_id - 1)
        if near or overlap:
            event.first_t, event.last_t = min(event.first_t, t), max(event.last_t, t)
            event.segment = (session_id, segment_id)
            return False
        self._open[fact_id] = _Open(t, t, (session_id, segment_id))
        return True

    def expire(self, now: float) -> None:
        """Forget events whose window has closed."""
        for fact_id in [f for f, e in self._open.items() if e.last_t + self.window_s < now]:
            del self._open[fact_id]

    def __len__(self) -> int:
        return len(self._open)
