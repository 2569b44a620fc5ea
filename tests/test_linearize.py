"""The target text (transcript, then REBEL triplets): round trip, and a parser that never raises
on what a model may emit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamre.model.linearize import FACTS, MARKERS, linearize, parse, target_text

words = st.text(st.characters(codec="utf-8", exclude_characters="<>"), min_size=1, max_size=12) \
    .map(lambda s: " ".join(s.split())).filter(bool)


def test_shared_heads_are_chained():
    text = linearize([("David Chen", "Work_For", "World Bank"),
                      ("David Chen", "Live_In", "Boston"), ("Maria", "Live_In", "Paris")])
    assert text == ("<triplet> David Chen<subj> World Bank<obj> Work_For<subj> Boston<obj> "
                    "Live_In<triplet> Maria<subj> Paris<obj> Live_In")
    assert [(t.head, t.relation, t.tail) for t in parse(text)] == [
        ("David Chen", "Work_For", "World Bank"), ("David Chen", "Live_In", "Boston"),
        ("Maria", "Live_In", "Paris")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(words, words, words), max_size=6))
def test_round_trip(triplets):
    parsed = [(t.head, t.relation, t.tail) for t in parse(linearize(triplets))]
    assert parsed == list(dict.fromkeys(triplets))  # duplicates kept once, order kept


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(MARKERS), st.text(max_size=8)), max_size=30))
def test_parser_never_raises_and_yields_only_complete_triplets(pieces):
    for t in parse(" ".join(pieces)):
        assert t.head and t.relation and t.tail
        assert not any(m in f for m in MARKERS for f in (t.head, t.relation, t.tail))


def test_truncated_output_keeps_the_complete_triplets():
    text = linearize([("A", "Kill", "B"), ("C", "Live_In", "D")])
    assert [t.head for t in parse(text[: text.rindex("<obj>") + 6])] == ["A"]


def test_target_is_the_transcript_then_the_triplets():
    target = target_text("David  Chen works for\nthe World Bank.", [("David Chen", "Work_For",
                                                                      "World Bank")])
    assert target == (" David Chen works for the World Bank." + FACTS +
                      "<triplet> David Chen<subj> World Bank<obj> Work_For")
    assert target_text("Nothing here.", []) == " Nothing here." + FACTS
