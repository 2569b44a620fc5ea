"""Corrections and merges as plain data: the graph replayed with each in force, the journal that
replays them, the cluster's ops of them in any order, and what a room learns from them."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.cluster.node import ClusterNode
from streamre.graph import GraphSettings, Mention, RoomGraph
from streamre.graph.entries import Correction, EntityMerge
from streamre.graph.ops import Op, change_op
from streamre.graph.ordered import OrderedGraph
from streamre.graph.store import GraphStore
from streamre.graph.transcript import Said
from streamre.hearing.learnt import learnt_names, learnt_pairs, learnt_runs
from streamre.hearing.names import Learnt, MeetingNames, Source
from streamre.server.facts import ClusterFacts, LocalFacts, taught
from streamre.triplets import Triplet

SETTINGS = GraphSettings(dedup_window_s=5.0)
HEARD = "Yell in a picture of a data scientist at Spotify, lives in Stockholm."
MEANT = "Elena Petrova, a data scientist at Spotify, lives in Stockholm."
WRONG = Triplet("Spotify", "OrgBased_In", "Stockholm", .8)
SHARED = Triplet("Sam Patel", "Work_For", "Infosys", .9)
RIGHT = (Triplet("Elena Petrova", "Work_For", "Spotify", .9),
         Triplet("Elena Petrova", "Live_In", "Stockholm", .9))


def corrected(session: str, segment: int, text: str, facts, heard: str = "", at: float = 500.0,
              by: str | None = "ana") -> Correction:
    return Correction(Mention(session, segment, "bo", text=text), tuple(facts), at, by, heard)


def edges_by_fact(graph: RoomGraph) -> dict[tuple, dict]:
    labels = {n["id"]: n["label"] for n in graph.nodes_json()}
    return {(labels[e["source"]], e["relation"], labels[e["target"]]): e
            for e in graph.edges_json()}


def test_a_correction_removes_what_only_its_line_stated_and_reads_the_new_facts():
    graph = RoomGraph("r", SETTINGS)
    graph.apply([WRONG, SHARED], Mention("s", 0, "bo", text=HEARD), 10.0)
    graph.apply([SHARED], Mention("s", 1, "bo", text="Sam Patel works for Infosys."), 100.0)
    before = edges_by_fact(graph)
    assert before["Sam Patel", "Work_For", "Infosys"]["mentions"] == 2
    version = graph.version
    delta = graph.change(corrected("s", 0, MEANT, RIGHT, HEARD))
    assert delta.version == version + 1 == graph.version
    assert delta.removed_edges == [before["Spotify", "OrgBased_In", "Stockholm"]["id"]]
    assert delta.removed_nodes == []  # Spotify and Stockholm are in the new facts
    after = edges_by_fact(graph)
    assert set(after) == {("Sam Patel", "Work_For", "Infosys"),
                          ("Elena Petrova", "Work_For", "Spotify"),
                          ("Elena Petrova", "Live_In", "Stockholm")}
    shared = after["Sam Patel", "Work_For", "Infosys"]
    assert shared["mentions"] == 1 and shared["segments"] == ["s/1"]  # one mention less
    assert after["Elena Petrova", "Live_In", "Stockholm"]["evidence"][0]["text"] == MEANT
    assert {e["id"] for e in delta.edges} >= {after[k]["id"] for k in after if k[0] != "Sam Patel"}
    assert graph.stated["s/0"] == tuple(after[k]["id"] for k in [
        ("Elena Petrova", "Work_For", "Spotify"), ("Elena Petrova", "Live_In", "Stockholm")])
    # Correcting it back to nothing: its nodes go too, and the delta says so.
    delta = graph.change(corrected("s", 0, "Hm.", [], at=600.0))
    assert set(delta.removed_nodes) == {"elena petrova", "spotify", "stockholm"}
    assert graph.change(corrected("s", 0, "Hm.", [], at=700.0)) is None  # nothing changes


def test_a_merge_moves_the_edges_and_sums_the_mentions_of_one_fact():
    graph = RoomGraph("r", SETTINGS)
    graph.apply([Triplet("Charlotte Du Bois", "Work_For", "Airbus", .9)],
                Mention("s", 0, text="a"), 10.0)
    graph.apply([Triplet("Charlotte Dubois", "Work_For", "Airbus", .9),
                 Triplet("Charlotte Dubois", "Live_In", "Toulouse", .9)],
                Mention("s", 1, text="b"), 100.0)
    # Fuzzy matching already joins these two spellings; a person's rename goes further.
    graph.apply([Triplet("Charlie", "Live_In", "Lyon", .9)], Mention("s", 2, text="c"), 200.0)
    old = {e["id"] for e in graph.edges_json()}
    delta = graph.change(EntityMerge("Charlie", "Charlotte Dubois", 300.0))
    after = edges_by_fact(graph)
    assert set(after) == {("Charlotte Dubois", "Work_For", "Airbus"),
                          ("Charlotte Dubois", "Live_In", "Toulouse"),
                          ("Charlotte Dubois", "Live_In", "Lyon")}
    assert after["Charlotte Dubois", "Work_For", "Airbus"]["mentions"] == 2
    assert delta.removed_nodes == ["charlie"] and len(delta.removed_edges) == 1
    assert delta.removed_edges[0] in old
    # Later hearings of the merged name go to the node it was merged into.
    graph.apply([Triplet("charlie", "Live_In", "Lyon", .9)], Mention("s", 3), 400.0)
    assert edges_by_fact(graph)["Charlotte Dubois", "Live_In", "Lyon"]["mentions"] == 2
    # Merging back the other way leaves no chain: one name, one node.
    graph.change(EntityMerge("Charlotte Dubois", "Charlie", 500.0))
    assert {n["label"] for n in graph.nodes_json()} == {"Charlie", "Airbus", "Toulouse", "Lyon"}


def test_a_rename_needs_no_other_node_and_a_merge_into_itself_changes_nothing():
    graph = RoomGraph("r", SETTINGS)
    graph.apply([Triplet("Sam Pichell", "Work_For", "Infosys", .9)], Mention("s", 0), 1.0)
    assert graph.change(EntityMerge("Sam Pichell", "sam pichell", 2.0)) is None
    delta = graph.change(EntityMerge("Sam Pichell", "Sam Patel", 3.0))
    assert [n["label"] for n in delta.nodes if n["id"] == "sam patel"] == ["Sam Patel"]


def test_a_correction_of_a_line_not_yet_heard_waits_for_it_in_a_cluster():
    line = Op("r", "a", 1, 100.0, "s", 0, "bo", "speech", False, 0.0, 2.0, 98.0, 100.0, HEARD,
              (WRONG,))
    fix = change_op("r", "b", 1, 99.0, corrected("s", 0, MEANT, RIGHT, HEARD, at=99.0))
    graphs = []
    for ops in ([line, fix], [fix, line]):
        ordered = OrderedGraph("r", SETTINGS)
        for op in ops:
            ordered.merge(op)
        graphs.append(ordered.graph)
    assert {k for k in edges_by_fact(graphs[0])} == {k for k in edges_by_fact(graphs[1])} == {
        ("Elena Petrova", "Work_For", "Spotify"), ("Elena Petrova", "Live_In", "Stockholm")}
    # And the line, when it comes after its correction, is recorded corrected.
    node = ClusterNode("c", "a", idle_s=60, clock=lambda: 1.0)
    facts = ClusterFacts(OrderedGraph("r", SETTINGS), node)
    assert facts.merge(fix).delta is None  # waiting
    said = facts.merge(line).said
    assert (said.text, said.heard, said.corrected_by) == (MEANT, HEARD, "ana")


def test_change_ops_round_trip_and_older_instances_refuse_them():
    fix = change_op("r", "b", 4, 99.0, corrected("s", 0, MEANT, RIGHT, HEARD))
    merge = change_op("r", "b", 5, 99.5, EntityMerge("Charlie", "Charlotte Dubois", 99.5, "bo"))
    for op in (fix, merge):
        data = json.loads(json.dumps(op.to_json()))
        assert data["v"] == 2 and Op.from_json(data) == op


def test_what_a_correction_and_a_merge_teach():
    assert learnt_pairs(HEARD, MEANT) == [Learnt("Yell in a picture of", "Elena Petrova")]
    assert learnt_pairs("Sam Pichell works for Infosys.", "Sam Patel works for Infosys.") == [
        Learnt("Sam Pichell", "Sam Patel")]
    assert learnt_pairs("Charlotte Du Bois is here", "Charlotte Dubois is here") == [
        Learnt("Charlotte Du Bois", "Charlotte Dubois")]
    # Never everyday words, nor words that were not made a name.
    assert learnt_pairs("Can you share your screen?", "Kenya share your screen?") == []
    assert learnt_pairs("their budget", "there budget") == []
    assert taught(EntityMerge("Charlie", "Charlotte Dubois", 1.0)) == (
        Learnt("Charlie", "Charlotte Dubois"),)
    assert taught(EntityMerge("can you", "Kenya", 1.0)) == ()


def test_learnt_words_are_offered_as_the_name_where_heard_again_and_nowhere_else():
    (name,) = learnt_names([Learnt("Yell in a picture of", "Elena Petrova")])
    assert name == "Elena Petrova" and name.heard == ("Yell in a picture of",)
    again = "Yell in a picture of a data scientist at Spotify lives in Stockholm."
    best = max(learnt_runs(again, [name]), key=lambda m: m.score)
    assert again[best.start:best.end] == "Yell in a picture of" and best.phrase == name
    assert learnt_runs("Yelling a picture of a cat.", [name])  # nearly the same words
    assert learnt_runs("Can you share your screen, Elena Petrova?", [name]) == []
    assert learnt_runs(again, ["Elena Petrova"]) == []  # a plain phrase knows no mishearing


def test_learnt_names_rank_first_and_can_be_forgotten():
    names = MeetingNames(vocabulary=("IKEA",))
    assert names.learn([Learnt("Sam Pichell", "Sam Patel")], limit=2)
    assert not names.learn([Learnt("Sam Pichell", "Sam Patel")], limit=2)
    names.learn([Learnt("sam pichell", "Sam Patil"), Learnt("Charlie", "Charlotte")], limit=2)
    assert names.learnt == (Learnt("sam pichell", "Sam Patil"), Learnt("Charlie", "Charlotte"))
    assert [(n.name, n.source) for n in names.expected()][:2] == [
        ("Charlotte", Source.LEARNT), ("Sam Patil", Source.LEARNT)]
    assert names.forget(meant="sam patil") == 1 and names.forget() == 1 and not names.learnt


def test_a_lone_rooms_journal_replays_its_corrections_and_merges(tmp_path):
    store = GraphStore(tmp_path / "j.db")
    facts = LocalFacts(RoomGraph("r", SETTINGS))

    def record(mention, triplets, at):
        recorded = facts.record(mention, triplets, at, at, 0.0, 1.0)
        store.record("r", recorded.said, triplets, mention, at, at)

    record(Mention("s", 0, "bo", text=HEARD), [WRONG], 10.0)
    record(Mention("s", 1, "bo", text="Hm."), [], 20.0)  # no facts, and kept
    record(Mention("s", 2, "bo", text="Charlie lives in Lyon."),
           [Triplet("Charlie", "Live_In", "Lyon")], 30.0)
    for change in (corrected("s", 1, "Sam Patel works for Infosys.", [SHARED], "Hm.", 40.0),
                   corrected("s", 0, MEANT, RIGHT, HEARD, 50.0),
                   EntityMerge("Charlie", "Charlotte Dubois", 60.0)):
        changed = facts.change(change)
        store.change("r", change, change.at, changed.restated)
    assert changed.learnt == (Learnt("Charlie", "Charlotte Dubois"),)
    replayed = store.load("r", SETTINGS)
    assert replayed.to_json() == facts.graph.to_json()
    assert store.load("r", SETTINGS, version=facts.graph.version - 1).to_json() != \
        facts.graph.to_json()
    lines = {said.segment_id: said for _, said in store.transcript.lines("r")}
    assert (lines[0].text, lines[0].heard, lines[0].corrected_by) == (MEANT, HEARD, "ana")
    assert lines[1].edges == facts.graph.stated["s/1"] and lines[1].edges
    assert lines[2].edges == facts.graph.stated["s/2"] and lines[2].heard is None
    assert Said.from_json(lines[0].to_json()) == lines[0] and "heard" not in lines[2].to_json()
    lyon = [e["id"] for e in facts.graph.edges_json() if e["target"] == "lyon"]
    assert [s.segment_id for _, s in store.transcript.lines("r", edge=lyon[0])] == [2]


NAMES = ["Sam Patel", "Sam Pichell", "Infosys", "Pune", "Elena Petrova", "Spotify", "Oslo"]
fact = st.builds(Triplet, st.sampled_from(NAMES), st.sampled_from(["Work_For", "Live_In"]),
                 st.sampled_from(NAMES), st.floats(0.1, 1.0))


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(st.lists(fact, max_size=3), min_size=1, max_size=8),
       changes=st.lists(st.one_of(
           st.tuples(st.just("fix"), st.integers(0, 7), st.lists(fact, max_size=3)),
           st.tuples(st.just("merge"), st.sampled_from(NAMES), st.sampled_from(NAMES))),
           max_size=6))
def test_no_change_loses_a_line_or_an_edge_another_line_states(tmp_path_factory, lines, changes):
    store = GraphStore(tmp_path_factory.mktemp("j") / "j.db")
    facts = LocalFacts(RoomGraph("r", SETTINGS))
    for i, triplets in enumerate(lines):
        mention = Mention("s", i, text=f"line {i}")
        recorded = facts.record(mention, triplets, 10.0 * i, 10.0 * i, None, None)
        store.record("r", recorded.said, triplets, mention, 10.0 * i, 10.0 * i)
    for n, (kind, a, b) in enumerate(changes):
        at = 1000.0 + n
        change = corrected("s", a % len(lines), f"fixed {n}", b, at=at) if kind == "fix" \
            else EntityMerge(a, b, at)
        store.change("r", change, at, facts.change(change).restated)
    graph = facts.graph
    assert store.load("r", SETTINGS).to_json() == graph.to_json()  # the journal agrees
    shown = {e["id"] for e in graph.edges_json()}
    said = store.transcript.lines("r")
    assert [s.segment_id for _, s in said] == list(range(len(lines)))  # no line lost
    for _, line in said:  # every edge a line states is in the graph, and the line says so
        assert set(line.edges) <= shown and line.edges == graph.stated[f"s/{line.segment_id}"]
    for edge in graph.edges_json():
        assert edge["mentions"] >= 1 and any(edge["id"] in s.edges for _, s in said)


def test_a_rewritten_sentence_teaches_no_name():
    assert learnt_pairs("David Chen works for the World Bank.",
                        "Maria Lopez lives in Boston.") == []
    assert learnt_pairs("I met bank of a miracle.", "I met Bank of America.") == [
        Learnt("bank of a miracle", "Bank of America")]


def test_a_node_is_of_the_type_its_readers_tagged_most_and_types_travel_in_the_journal():
    graph = RoomGraph("r", SETTINGS)
    works = Triplet("Jordan", "Work_For", "Acme", .9, "person", "organisation")
    graph.apply([works], Mention("s", 0), 1.0)
    graph.apply([Triplet("Jordan", "Live_In", "Oslo", .9, "location", "location")],
                Mention("s", 1), 2.0)
    graph.apply([Triplet("Jordan", "Work_For", "Acme", .9)], Mention("s", 2), 3.0)  # untagged
    types = {n["label"]: n.get("type") for n in graph.nodes_json()}
    assert types == {"Jordan": "location", "Acme": "organisation", "Oslo": "location"}
    graph.apply([works], Mention("s", 3), 4.0)
    assert {n["label"]: n["type"] for n in graph.nodes_json()}["Jordan"] == "person"
    assert Triplet.from_row(works.to_row()).head_type == "person" and works == Triplet(
        "Jordan", "Work_For", "Acme", .9)  # the types are not part of the fact
    assert "head_type" not in Triplet("a", "r", "b").to_json()
