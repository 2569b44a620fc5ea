"""What each instance holds, and who resends what another lacks (anti-entropy), as plain data.

An instance's *heads* are, for each room it has had an op in within the idle time, and each
origin, the highest seq it holds with none missing below (`Heads`). Every instance publishes
its heads, retained, on its member topic. An instance that sees a peer's head for (room,
origin) below its own resends the ops in between (`repairs`), if it is the one whose job that
is: the origin itself while it is online, else the online instance with the most of them (the
lowest name on a tie), so a lost op is resent once, not by everyone. An op is resent only once
it is older than a grace period, so ops still in flight are not sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HeadMap = dict[str, dict[str, int]]  # room -> origin -> contiguous head


@dataclass
class _Origin:
    head: int = 0  # every seq up to here is held
    above: set[int] = field(default_factory=set)  # held seqs past a gap


class Heads:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, _Origin]] = {}
        self._last: dict[str, float] = {}  # room -> when its latest op was merged

    def add(self, room: str, origin: str, seq: int, now: float) -> None:
        held = self._rooms.setdefault(room, {}).setdefault(origin, _Origin())
        if seq > held.head:
            held.above.add(seq)
            while held.head + 1 in held.above:
                held.head += 1
                held.above.discard(held.head)
        self._last[room] = max(self._last.get(room, now), now)

    def head(self, room: str, origin: str) -> int:
        held = self._rooms.get(room, {}).get(origin)
        return held.head if held else 0

    def next_seq(self, room: str, origin: str) -> int:
        """The seq an origin gives its next op in `room`."""
        held = self._rooms.get(room, {}).get(origin)
        return max([held.head, *held.above]) + 1 if held else 1

    def active(self, now: float, idle_s: float) -> HeadMap:
        """The heads of rooms with an op in the last `idle_s` seconds: what is published."""
        return {room: {o: h.head for o, h in origins.items()}
                for room, origins in self._rooms.items() if now - self._last[room] <= idle_s}


def repairer(room: str, origin: str, online: dict[str, HeadMap]) -> str | None:
    """Who resends `origin`'s ops of `room`: the origin while online, else the online member
    holding the most of them (the lowest name on a tie); None if no one online holds any."""
    if origin in online:
        return origin
    holding = [(-heads.get(room, {}).get(origin, 0), name) for name, heads in online.items()]
    holding = [h for h in holding if h[0] < 0]
    return min(holding)[1] if holding else None


def repairs(me: str, mine: HeadMap, peer: HeadMap, online: dict[str, HeadMap]
            ) -> list[tuple[str, str, int, int]]:
    """(room, origin, after, up_to): the ops `me` should resend because `peer` lacks them."""
    wanted = []
    for room, origins in sorted(mine.items()):
        for origin, head in sorted(origins.items()):
            theirs = peer.get(room, {}).get(origin, 0)
            if theirs < head and repairer(room, origin, online) == me:
                wanted.append((room, origin, theirs, head))
    return wanted
