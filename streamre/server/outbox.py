"""One client's bounded send queue, drained by its own writer task.

Session messages (`ready`, `vad`, `segment`, `triplets`, `done`, `pong`, `error`, ...) are
never dropped: each answers something this client sent. So that a client that sends and does
not read cannot pile them up, its session stops reading from it while
`REPLIES_PER_SLOT × limit` of them are unsent (`wait_for_reader`). Graph updates are shared by
the room; when a client falls `limit` messages behind, its queued graph updates are replaced by
one snapshot taken when it is sent, so a slow viewer costs the room nothing and never sees a
gap.

A client that follows the room's transcript (`subscribe` with `history`) is sent its journaled
lines first, then each new one, in journal order. Lines are shared by the room too: when the
client falls behind, its queued lines are replaced by one catch-up that reads the journal
from the last line it was sent, so it misses none and holds no more than the queue. A line a
person corrected (or whose edges a merge changed) goes again to every client of the room, in
its new form, and is never dropped.

A live caption (`partial`) is the least of all: a newer one of the same speaker replaces one
still queued, and a client that falls behind loses them with its graph updates.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Callable, NamedTuple

from streamre.server.connection import Connection, Disconnected

_SNAPSHOT = object()
_CATCH_UP = object()  # the transcript lines after the last one sent, read when sent
REPLIES_PER_SLOT = 4
CATCH_UP_PAGE = 500  # transcript lines read from the journal at a time


class _Line(NamedTuple):
    seq: int  # its sequence number in the room's journal
    text: str


class _Rewritten(NamedTuple):
    text: str  # a line's `transcript` message, as corrected


class _Partial(NamedTuple):
    session_id: str  # whose open utterance it captions
    text: str  # its `partial` message


# The journaled transcript after a sequence number, at most so many lines: (seq, message).
TranscriptSource = Callable[[int, int], "list[tuple[int, str]]"]


class Outbox:
    def __init__(self, ws: Connection, limit: int, on_resync: Callable[[], None] | None = None) -> None:
        self.ws = ws
        self.limit = limit
        self.snapshot_source: Callable[[], dict] | None = None
        self._transcript: TranscriptSource | None = None  # None: not following it
        self._line_seq = -1  # transcript line this client has been sent up to
        self._on_resync = on_resync
        self._items: deque = deque()  # str (a session message) | (version, str) | _SNAPSHOT
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._version = -1  # graph version this client has been sent up to
        self.closed = False
        self._replies = 0  # session messages queued and not yet written
        self._reader_keeps_up = asyncio.Event()
        self._reader_keeps_up.set()
        self.task = asyncio.create_task(self._run(), name="outbox")

    def send(self, message: dict) -> None:
        if self.closed:
            return
        self._replies += 1
        if self._replies >= REPLIES_PER_SLOT * self.limit:
            self._reader_keeps_up.clear()
        self._put(json.dumps(message))

    async def wait_for_reader(self) -> None:
        """Backpressure: return once fewer than `REPLIES_PER_SLOT × limit` session messages wait
        to be written (or the connection is gone)."""
        await self._reader_keeps_up.wait()

    def send_graph_delta(self, version: int, text: str) -> None:
        self._put((version, text))
        if len(self._items) > self.limit:
            self._resync()

    def follow_transcript(self, source: TranscriptSource | None) -> None:
        """Send the transcript `source` holds from its first line, then each new one; None
        stops (a room left). Queued lines of a room followed before are dropped."""
        self._items = deque(i for i in self._items if not (i is _CATCH_UP or
                                                          isinstance(i, _Line)))
        self._transcript, self._line_seq = source, -1
        if source is not None:
            self._put(_CATCH_UP)

    def send_transcript(self, seq: int, text: str) -> None:
        """A new line of the room's transcript, for a client that follows it."""
        if self._transcript is None:
            return
        self._put(_Line(seq, text))
        if len(self._items) > self.limit:
            self._resync()

    def send_rewritten(self, text: str) -> None:
        """A line of the room's transcript rewritten by a correction or merge: to every
        client, whether it follows the transcript or not."""
        self._put(_Rewritten(text))

    def send_partial(self, session_id: str, text: str) -> None:
        """A live caption: it replaces that session's caption if one is still queued."""
        for i, item in enumerate(self._items):
            if isinstance(item, _Partial) and item.session_id == session_id:
                self._items[i] = _Partial(session_id, text)
                return
        self._put(_Partial(session_id, text))

    def send_snapshot(self) -> None:
        if _SNAPSHOT not in self._items:  # one waiting is taken when sent: fresh enough
            self._put(_SNAPSHOT)

    def _put(self, item) -> None:
        if self.closed:
            return
        self._items.append(item)
        self._idle.clear()
        self._wakeup.set()

    def _resync(self) -> None:
        kept = [i for i in self._items if isinstance(i, (str, _Rewritten))]
        lines = self._transcript is not None and any(
            i is _CATCH_UP or isinstance(i, _Line) for i in self._items)
        self._items = deque(kept + [_SNAPSHOT] + ([_CATCH_UP] if lines else []))
        if self._on_resync:
            self._on_resync()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (or the connection is gone)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._items:
                    item = self._items.popleft()
                    if item is _SNAPSHOT:
                        if self.snapshot_source is None:
                            continue
                        snapshot = self.snapshot_source()
                        self._version = snapshot["version"]
                        await self.ws.send(json.dumps(snapshot))
                    elif item is _CATCH_UP:
                        await self._catch_up()
                    elif isinstance(item, (_Rewritten, _Partial)):
                        await self.ws.send(item.text)
                    elif isinstance(item, _Line):
                        if item.seq > self._line_seq:  # else it came with a catch-up
                            self._line_seq = item.seq
                            await self.ws.send(item.text)
                    elif isinstance(item, tuple):
                        version, text = item
                        if version <= self._version:
                            continue  # already inside a snapshot this client was sent
                        self._version = version
                        await self.ws.send(text)
                    else:
                        await self.ws.send(item)
                        self._replies -= 1
                        if self._replies < REPLIES_PER_SLOT * self.limit:
                            self._reader_keeps_up.set()
                self._idle.set()
        except Disconnected:
            pass
        finally:
            self.closed = True
            self._items.clear()
            self._idle.set()
            self._reader_keeps_up.set()

    async def _catch_up(self) -> None:
        source = self._transcript
        while source is not None:
            page = source(self._line_seq, CATCH_UP_PAGE)
            for seq, text in page:
                if source is not self._transcript:
                    return  # the client moved to another room meanwhile
                self._line_seq = seq
                await self.ws.send(text)
            if len(page) < CATCH_UP_PAGE:
                return

    async def close(self) -> None:
        self.closed = True
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
