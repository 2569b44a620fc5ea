"""What one client can make the server hold, bounded: rooms (driven with data and a clock of
the test's own: caps, idle eviction, rooms with facts resting in the journal and loading
again) and unread replies."""

from __future__ import annotations

import asyncio

import pytest

from helpers import wire
from streamre.audio import VadConfig

from streamre.graph import GraphSettings, Mention
from streamre.graph.store import GraphStore
from streamre.protocol import Limits, SessionProtocol, ping_message
from streamre.server.metrics import Metrics
from streamre.server.outbox import REPLIES_PER_SLOT, Outbox
from streamre.server.rooms import Rooms, TooManyRooms
from streamre.server.session import Session, SessionSettings
from streamre.triplets import Triplet


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = GraphStore(tmp_path / "g.db")
    yield s
    s.close()


class Member:
    """Stands where a client's outbox would: it records the deltas and lines it is sent."""

    def __init__(self) -> None:
        self.versions: list[int] = []
        self.lines: list[int] = []

    def send_graph_delta(self, version: int, text: str) -> None:
        self.versions.append(version)

    def send_transcript(self, seq: int, text: str) -> None:
        self.lines.append(seq)


def rooms_of(store, clock, max_rooms=3, idle_s=60.0) -> Rooms:
    return Rooms(store, GraphSettings(dedup_window_s=0), max_rooms=max_rooms, idle_s=idle_s,
                 clock=clock)


def test_empty_rooms_are_forgotten_after_idling(store):
    clock = Clock()
    rooms = rooms_of(store, clock)
    viewer = Member()
    a = rooms.enter("a", viewer)
    rooms.enter("b", Member())
    rooms.leave(a, viewer)
    clock.now = 59
    assert rooms.evict_idle() == []
    clock.now = 60
    assert rooms.evict_idle() == ["a"]  # b still has its client
    assert [s["room"] for s in rooms.summaries()] == ["b"]
    assert rooms.graph("a") is None


def test_a_room_with_facts_rests_in_the_journal_and_comes_back(store):
    clock = Clock()
    rooms = rooms_of(store, clock, max_rooms=2)
    member = Member()
    room = rooms.enter("facts", member)
    room.record(Mention("s", 0), [Triplet("David Chen", "Work_For", "World Bank")], 1.0, 1.0)
    assert member.versions == [1]
    rooms.leave(room, member)
    clock.now = 1000
    assert rooms.evict_idle() == []  # facts are not forgotten by idling
    rooms.enter("x", Member())
    rooms.enter("y", Member())  # needs the place: "facts" goes to rest
    assert {r.name for r in rooms} == {"x", "y"}
    assert [s["room"] for s in rooms.summaries()] == ["facts", "x", "y"]
    assert rooms.summaries()[0]["edges"] == 1 and rooms.summaries()[0]["clients"] == 0
    assert rooms.graph("facts").edge_count == 1  # rebuilt from the journal, not kept
    assert {r.name for r in rooms} == {"x", "y"}


def test_when_every_room_has_a_client_a_new_room_is_refused(store):
    clock = Clock()
    rooms = rooms_of(store, clock, max_rooms=2)
    first = Member()
    a = rooms.enter("a", first)
    rooms.enter("b", Member())
    assert rooms.can_enter("a") and not rooms.can_enter("c")
    with pytest.raises(TooManyRooms):
        rooms.enter("c", Member())
    rooms.enter("a", Member())  # a room in memory is always there to join
    rooms.leave(a, first)
    assert not rooms.can_enter("c")  # "a" still has its second client
    for member in list(a.members):
        rooms.leave(a, member)
    assert rooms.can_enter("c")
    rooms.enter("c", Member())
    assert {r.name for r in rooms} == {"b", "c"}


def test_the_room_idle_longest_makes_way(store):
    clock = Clock()
    rooms = rooms_of(store, clock, max_rooms=3)
    for name, left_at in (("a", 5), ("b", 1), ("c", 3)):
        member = Member()
        room = rooms.enter(name, member)
        clock.now = left_at
        rooms.leave(room, member)
    rooms.open("d")
    assert {r.name for r in rooms} == {"a", "c", "d"}


def test_restore_keeps_at_most_max_rooms_in_memory(store):
    for name in ("a", "b", "c"):
        store.append(name, [Triplet("A", "Work_For", "B")], Mention("s", 0), 1.0)
    rooms = rooms_of(store, Clock(), max_rooms=2)
    assert rooms.restore() == ["a", "b", "c"]
    assert len(rooms) == 2
    assert [s["room"] for s in rooms.summaries()] == ["a", "b", "c"]
    assert rooms.open("c").graph.edge_count == 1  # loads again on demand


class Connection:
    """A client connection that writes only when the test lets it."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.received = 0

    async def send(self, text: str) -> None:
        await self.reading.wait()
        self.received += 1


def test_a_client_that_does_not_read_is_not_read_either():
    async def scenario():
        connection = Connection()
        outbox = Outbox(connection, limit=8)
        for _ in range(REPLIES_PER_SLOT * 8 - 1):
            outbox.send({"type": "pong"})
        await asyncio.wait_for(outbox.wait_for_reader(), 1)  # below the cap: no waiting
        outbox.send({"type": "pong"})
        reader = asyncio.create_task(outbox.wait_for_reader())
        await asyncio.sleep(0.1)
        held = not reader.done()
        connection.reading.set()  # the client reads again
        await asyncio.wait_for(reader, 1)
        await outbox.drain()
        await outbox.close()
        return held, connection.received

    held, received = asyncio.run(scenario())
    assert held and received == REPLIES_PER_SLOT * 8


def test_a_session_stops_reading_a_client_that_does_not_read():
    async def scenario():
        connection = Connection()
        session = Session(connection, SessionProtocol("s", VadConfig(), Limits(65536, 15.0)),
                          engine=None, rooms=None, room_names=None, metrics=Metrics(),
                          settings=SessionSettings(send_queue=2, session_queue=8,
                                                   lag_warning_s=3.0))
        read = 0
        while read < 100:  # pings, each answered by a pong the client does not read
            try:
                await asyncio.wait_for(session.on_message(wire(ping_message())), 0.5)
            except TimeoutError:
                break  # the session stopped taking frames from this client
            read += 1
        connection.reading.set()
        await asyncio.wait_for(session.on_message(wire(ping_message())), 1)  # reads again
        await session.outbox.drain()
        await session.outbox.close()
        return read, connection.received

    read, received = asyncio.run(scenario())
    assert read == REPLIES_PER_SLOT * 2 - 1  # the pong that reached the cap: not read past it
    assert received == REPLIES_PER_SLOT * 2 + 1
