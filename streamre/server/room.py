"""One room of the server: its graph, its journal and the outboxes of everyone in it.

A room is also where facts leave the process: the MQTT publisher is fed here and nowhere else,
with each segment's `triplets` answer, its transcript line and each graph delta. In a cluster
(`serve --cluster`) a room is an `OrderedGraph` of ops: its own segments become ops sent to
the other instances, and theirs are merged here the same way.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from streamre.cluster.node import ClusterNode
from streamre.graph import GraphDelta, Mention, RoomGraph
from streamre.graph.ops import Op
from streamre.graph.ordered import OrderedGraph
from streamre.graph.store import GraphStore
from streamre.graph.transcript import Said
from streamre.hearing.names import ExpectedName, MeetingNames, rewriting
from streamre.hearing.vocabulary import check_vocabulary
from streamre.mqtt.publisher import MqttPublisher
from streamre.server.outbox import Outbox
from streamre.triplets import Triplet

log = logging.getLogger("streamre.server")


@dataclass
class Room:
    """A room's graph, its journal, and the outboxes of everyone in it (producers, viewers)."""
    name: str
    graph: RoomGraph
    store: GraphStore
    publisher: MqttPublisher | None = None
    on_refused: Callable[[int], None] = lambda n: None  # facts refused by the room's caps
    members: set[Outbox] = field(default_factory=set)
    idle_since: float = 0.0  # when its last member left (or it opened), on the rooms' clock
    names: MeetingNames = field(default_factory=MeetingNames)  # what it was told, journaled
    node: ClusterNode | None = None  # this instance in its cluster, if in one
    ordered: OrderedGraph | None = None  # the graph as ops, in a cluster

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.names.vocabulary

    def set_vocabulary(self, phrases: list[str], add: bool = False) -> tuple[str, ...]:
        """Replace the room's vocabulary (or `add` to it), kept in the journal; raises
        `BadVocabulary` past the bounds, the old one kept."""
        phrases = check_vocabulary([*self.vocabulary, *phrases] if add else phrases)
        self.store.names.save_vocabulary(self.name, phrases)
        self.names.vocabulary = phrases
        return phrases

    def set_context(self, text: str, names: list[str]) -> None:
        """Replace the meeting's context and the names found in it (empty: cleared), kept in
        the journal."""
        names = tuple(names) if text else ()
        self.store.names.save_context(self.name, text, names)
        self.names.context, self.names.context_names = text, names

    def typed_names(self, names: list[str]) -> None:
        """Names found in a typed line join what the room expects, kept in the journal."""
        if self.names.typed(names):
            self.store.names.save_chat_names(self.name, self.names.chat)

    def expected(self) -> list[ExpectedName]:
        """Every name the room expects, most trusted first, with where it came from."""
        return self.names.expected(self.graph.labels())

    def hearing_vocabulary(self) -> tuple[str, ...]:
        """What its segments are heard with (beside `serve --vocabulary`): the names people
        gave, typed or joined with; never a name only heard (it must not rewrite what else is
        heard), at most `MAX_PHRASES`. Asked for every segment: the graph's labels, the least
        trusted and never heard with, are not walked."""
        return rewriting(self.names.expected())

    def record(self, mention: Mention, triplets: list[Triplet], at: float, began: float,
               start: float | None = None, end: float | None = None) -> Said:
        """One segment (or typed sentence) and its facts: applied to the graph, journaled in
        one transaction, then announced (graph delta, transcript line). `at` is the meeting
        time of its facts, `began` the meeting time it began (Unix seconds); `start` and `end`
        are seconds of its stream."""
        self.names.joined(mention.speaker)
        if self.node is not None:
            return self.merge(self.node.make_op(self.name, mention, triplets, at, began,
                                                start, end))
        refused = self.graph.refused
        # No facts, no call: the graph is exactly what replaying its facts rebuilds.
        delta, stated = self.graph.apply_stating(triplets, mention, at) if triplets \
            else (None, [])
        said = Said(mention.session_id, mention.segment_id, mention.speaker, mention.source,
                    start, end, began, mention.text, tuple(stated))
        seq = self._journal(said, triplets, mention, at)
        self._announce(refused, delta, False, said, seq, local=True)
        return said

    def merge(self, op: Op) -> Said | None:
        """A clustered room takes an op, its own or another instance's: merged, journaled,
        announced (and sent on, if its own). None if it was already here."""
        refused = self.graph.refused
        merged_op = self.ordered.merge(op)
        if merged_op is None:
            return None
        self.graph = self.ordered.graph
        said = op.said(merged_op.stated)
        seq = self._journal(said, list(op.triplets), op.mention(), op.at, op)
        self.node.held(op)
        local = op.origin == self.node.origin
        if merged_op.rebuilt:
            self.node.on_replay()
        self._announce(refused, merged_op.delta, merged_op.rebuilt, said, seq, local)
        if local:
            self.node.send(op)
        return said

    def _journal(self, said: Said, triplets: list[Triplet], mention: Mention, at: float,
                 op: Op | None = None) -> int:
        try:  # durable before announced
            return self.store.record(self.name, said, triplets, mention, at, time.time(), op,
                                     self.graph.version)[1]
        except Exception:
            # Not journaled, so never applied: the graph is the journal's again.
            self.reload()
            raise

    def reload(self) -> None:
        """The graph as the journal has it."""
        if self.ordered is not None:
            self.ordered = ordered_graph(self.store, self.name, self.graph.settings)
            self.graph = self.ordered.graph
        else:
            self.graph = self.store.load(self.name, self.graph.settings)

    def _announce(self, refused: int, delta: GraphDelta | None, rebuilt: bool, said: Said,
                  seq: int, local: bool) -> None:
        """Tell the members and MQTT what one journaled segment changed."""
        if self.graph.refused > refused:
            self.on_refused(self.graph.refused - refused)
        publishes = self.publisher is not None and (self.node is None or self.node.lead)
        if delta is not None:
            message = delta.to_message()
            text = json.dumps(message)  # serialised once for every member
            for outbox in list(self.members):
                outbox.send_graph_delta(delta.version, text)
            if publishes and self.claim_version():  # after the viewers have it
                self.publisher.publish_delta(self.name, message)
        if rebuilt:  # replayed in order: everyone takes the whole graph again
            for outbox in list(self.members):
                outbox.send_snapshot()
            if self.publisher is not None:
                self.publisher.snapshot_soon(self.name)
        line = said.message()
        text = json.dumps(line)
        for outbox in list(self.members):
            outbox.send_transcript(seq, text)  # to those who follow the transcript
        if self.publisher is not None and local:  # each instance publishes what it heard
            self.publisher.publish_transcript(self.name, {**line, "room": self.name})

    def claim_version(self) -> bool:
        """In a cluster, keep this room's versions past the last one another lead published
        (else subscribers would take this instance's as old); False if it had to jump, and a
        snapshot goes out instead."""
        if self.node is None or self.graph.version > self.node.version_floor(self.name):
            return True
        self.graph.version = self.node.version_floor(self.name) + 1
        for outbox in list(self.members):
            outbox.send_snapshot()
        if self.publisher is not None:
            self.publisher.snapshot_soon(self.name)
        return False

    def transcript_after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        """The journaled transcript after sequence number `seq`, as `transcript` messages."""
        return [(n, json.dumps(said.message()))
                for n, said in self.store.transcript(self.name, seq, limit)]

    def report(self, session_id: str, answer: dict) -> None:
        """A producer's `triplets` answer, for integrators (MQTT); failed answers stay local."""
        if self.publisher is not None and "error" not in answer:
            self.publisher.publish_triplets(self.name, {
                **answer, "session_id": session_id, "room": self.name,
                "message_id": f"{session_id}/{answer['segment_id']}"})

    def summary(self) -> dict:
        return {"room": self.name, "nodes": self.graph.node_count, "edges": self.graph.edge_count,
                "version": self.graph.version, "clients": len(self.members),
                "refused_facts": self.graph.refused}


def ordered_graph(store: GraphStore, name: str, settings) -> OrderedGraph:
    """A clustered room's ops from the journal, merged in order, at the version it had."""
    ordered = OrderedGraph(name, settings, journal=lambda: store.ops(name))
    ordered.extend(store.ops(name))
    ordered.graph.version = max(ordered.graph.version, store.op_version(name))
    return ordered


def record_counted(room: Room, metrics, mention: Mention, triplets: list[Triplet], at: float,
                   began: float, start: float | None = None, end: float | None = None
                   ) -> dict | None:
    """`room.record`, counted in `metrics` (the server's `Metrics`); None once journaled, or
    the error fields of the `triplets` answer when the journal refused it (a full disk)."""
    try:
        room.record(mention, triplets, at, began, start, end)
    except Exception as e:
        log.exception("could not journal %s", mention.segment_ref)
        metrics.errors.labels("journal_failed").inc()
        return dict(triplets=[], error="journal_failed", message=str(e))
    metrics.triplets.inc(len(triplets))
    return None
