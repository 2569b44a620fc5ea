"""One room of the server, the shell around its facts' pure core (`streamre.server.facts`):
its journal and the outboxes of everyone in it.

A room is also where facts leave the process: the MQTT publisher is fed here and nowhere else,
with each segment's `triplets` answer, its transcript line and each graph delta. In a cluster
(`serve --cluster`) the core is `ClusterFacts`: its own segments become ops sent to the other
instances, and theirs are merged here the same way.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from streamre.cluster.node import ClusterNode
from streamre.graph import GraphDelta, GraphSettings, Mention, RoomGraph
from streamre.graph.entries import Change, Correction, VoiceName
from streamre.graph.ops import Op
from streamre.graph.ordered import OrderedGraph
from streamre.graph.store import GraphStore
from streamre.graph.transcript import Said
from streamre.hearing.names import ExpectedName, MeetingNames, rewriting
from streamre.hearing.learnt import MAX_LEARNT, learnt_names
from streamre.hearing.vocabulary import check_vocabulary, merged
from streamre.mqtt.publisher import MqttPublisher
from streamre.protocol.wire import Failed
from streamre.server.facts import Changed, ClusterFacts, LocalFacts, Recorded
from streamre.server.outbox import Outbox
from streamre.triplets import Triplet

log = logging.getLogger("streamre.server")


@dataclass
class Room:
    """A room's shell: its facts (`LocalFacts`, or `ClusterFacts` in a cluster, the pure core),
    its journal, what it expects to hear, and the outboxes of everyone in it."""
    name: str
    facts: LocalFacts | ClusterFacts
    store: GraphStore
    publisher: MqttPublisher | None = None
    on_refused: Callable[[int], None] = lambda n: None  # facts refused by the room's caps
    members: set[Outbox] = field(default_factory=set)
    idle_since: float = 0.0  # when its last member left (or it opened), on the rooms' clock
    names: MeetingNames = field(default_factory=MeetingNames)  # what it was told, journaled

    @property
    def graph(self) -> RoomGraph:
        return self.facts.graph

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

    def forget_learnt(self, heard: str | None = None, meant: str | None = None) -> int:
        """Forget what corrections taught (`MeetingNames.forget`), kept in the journal; how
        many pairs went."""
        gone = self.names.forget(heard, meant)
        if gone:
            self._save_learnt()
        return gone

    def _save_learnt(self) -> None:
        self.store.names.save_learnt(self.name, [(p.heard, p.meant) for p in self.names.learnt])

    def expected(self) -> list[ExpectedName]:
        """Every name the room expects, most trusted first, with where it came from."""
        return self.names.expected(self.graph.labels())

    def hearing_vocabulary(self) -> tuple[str, ...]:
        """What its segments are heard with (beside `serve --vocabulary`): the names people
        gave, typed or joined with; never a name only heard (it must not rewrite what else is
        heard), at most `MAX_PHRASES`. Asked for every segment: the graph's labels, the least
        trusted and never heard with, are not walked. Learnt names come first, knowing how
        they were misheard (`LearntName`)."""
        return merged(learnt_names(self.names.learnt), rewriting(self.names.expected()))

    def record(self, mention: Mention, triplets: list[Triplet], at: float, began: float,
               start: float | None = None, end: float | None = None) -> Said:
        """One segment (or typed sentence) and its facts: applied to the graph, journaled in
        one transaction, then announced (graph delta, transcript line). `at` is the meeting
        time of its facts, `began` the meeting time it began (Unix seconds); `start` and `end`
        are seconds of its stream."""
        self.names.joined(mention.speaker)
        return self._carry_out(self.facts.record(mention, triplets, at, began, start, end))

    def merge(self, op: Op) -> Said | Changed | None:
        """A clustered room takes an op, its own or another instance's: merged, journaled,
        announced (and sent on, if its own). None if it was already here."""
        recorded = self.facts.merge(op)
        if isinstance(recorded, Changed):
            return self._carry_out_change(recorded)
        return None if recorded is None else self._carry_out(recorded)

    def change(self, change: Change) -> Changed:
        """A person's correction of a line, merge of two entities or name for a voice: in
        force on the graph, journaled with the lines it rewrites, then announced (a delta with
        what left, the rewritten lines) and, in a cluster, sent to the others."""
        return self._carry_out_change(self.facts.change(change))

    def _carry_out_change(self, changed: Changed) -> Changed:
        """What the core decided of a change: journaled with its lines, learnt from, then
        the delta and every rewritten line announced, and its op sent."""
        try:
            self.store.change(self.name, changed.change, time.time(), changed.restated,
                              changed.op, self.graph.version)
        except Exception:
            self.reload()
            raise
        self.facts.journaled(changed.op, changed.rebuilt)
        if self.names.learn(changed.learnt, MAX_LEARNT):
            self._save_learnt()
        self._announce_delta(changed.delta, changed.rebuilt)
        lines = dict(changed.restated)
        if isinstance(changed.change, Correction):
            mention = changed.change.mention
            lines.setdefault((mention.session_id, mention.segment_id), ())
        elif isinstance(changed.change, VoiceName):  # every line of it says who, now
            named = changed.change
            self.names.joined(named.speaker)
            for _, said in self.store.transcript.voice_lines(self.name, named.session_id,
                                                             named.voice):
                lines.setdefault((said.session_id, said.segment_id), ())
        for session_id, segment_id in lines:
            found = self.store.transcript.line(self.name, session_id, segment_id)
            if found is not None:
                self._announce_line(found[0], found[1], changed.local, rewritten=True)
        self.facts.announced(changed.op, changed.local)
        return changed

    def _carry_out(self, recorded: Recorded) -> Said:
        """What the core decided: journaled (durable before announced), announced, sent."""
        try:
            seq = self.store.record(self.name, recorded.said, recorded.triplets,
                                    recorded.mention, recorded.at, time.time(), recorded.op,
                                    self.graph.version)[1]
        except Exception:
            self.reload()  # not journaled, so never applied: the graph is the journal's again
            raise
        self.facts.journaled(recorded.op, recorded.rebuilt)
        if recorded.refused:
            self.on_refused(recorded.refused)
        self._announce(recorded, seq)
        self.facts.announced(recorded.op, recorded.local)
        return recorded.said

    def reload(self) -> None:
        """The room's facts as the journal has them."""
        self.facts = load_facts(self.store, self.name, self.graph.settings, self.facts.node)

    def _announce(self, recorded: Recorded, seq: int) -> None:
        """Tell the members and MQTT what one journaled segment changed."""
        self._announce_delta(recorded.delta, recorded.rebuilt)
        self._announce_line(seq, recorded.said, recorded.local)

    def _announce_delta(self, delta: GraphDelta | None, rebuilt: bool) -> None:
        if delta is not None:
            message = delta.to_message()
            text = json.dumps(message)  # serialised once for every member
            for outbox in list(self.members):
                outbox.send_graph_delta(delta.version, text)
            if self.publisher is not None and self.facts.publishes_graph and \
                    self.claim_version():  # after the viewers have it
                self.publisher.publish_delta(self.name, message)
        if rebuilt:  # replayed in order: everyone takes the whole graph again
            self._resync()

    def _announce_line(self, seq: int, said: Said, local: bool, rewritten: bool = False
                       ) -> None:
        """A new line to those who follow the transcript; a `rewritten` one (corrected, or
        stating other edges) to everyone in the room."""
        line = said.message()
        text = json.dumps(line)
        for outbox in list(self.members):
            if rewritten:
                outbox.send_rewritten(text)
            else:
                outbox.send_transcript(seq, text)
        if self.publisher is not None and local:  # each instance publishes its own
            self.publisher.publish_transcript(self.name, {**line, "room": self.name})

    def claim_version(self) -> bool:
        """Whether this room's next version may be published as it is (`ClusterFacts.
        claim_version`); if it had to jump, everyone gets a snapshot instead."""
        if self.facts.claim_version():
            return True
        self._resync()
        return False

    def _resync(self) -> None:
        for outbox in list(self.members):
            outbox.send_snapshot()
        if self.publisher is not None:
            self.publisher.snapshot_soon(self.name)

    def transcript_after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        """The journaled transcript after sequence number `seq`, as `transcript` messages."""
        return [(n, json.dumps(said.message()))
                for n, said in self.store.transcript.lines(self.name, seq, limit)]

    def send_partial(self, session_id: str, message: dict) -> None:
        """A live caption to everyone in the room (never journaled, never published)."""
        text = json.dumps(message)
        for outbox in list(self.members):
            outbox.send_partial(session_id, text)

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


def load_facts(store: GraphStore, name: str, settings: GraphSettings,
               node: ClusterNode | None) -> LocalFacts | ClusterFacts:
    """Room `name`'s facts as the journal has them (or none yet): its graph alone, or, in a
    cluster (`node`), its ops merged in order at the version it had."""
    if node is None:
        return LocalFacts(store.load(name, settings) if store.has_room(name)
                          else RoomGraph(name, settings))
    ordered = OrderedGraph(name, settings, journal=lambda: store.ops(name))
    ordered.extend(store.ops(name))
    ordered.graph.version = max(ordered.graph.version, store.op_version(name))
    return ClusterFacts(ordered, node)


def record_counted(room: Room, metrics, mention: Mention, triplets: list[Triplet], at: float,
                   began: float, start: float | None = None, end: float | None = None
                   ) -> Failed | None:
    """`room.record`, counted in `metrics` (the server's `Metrics`); None once journaled,
    `journal_failed` when the journal refused it (a full disk)."""
    try:
        room.record(mention, triplets, at, began, start, end)
    except Exception as e:
        log.exception("could not journal %s", mention.segment_ref)
        metrics.errors.labels("journal_failed").inc()
        return Failed("journal_failed", str(e))
    metrics.triplets.inc(len(triplets))
    return None
