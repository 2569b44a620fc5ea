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


# -- the facts in element orders (RPG-MoGe) ------------------------------------------------------

def parse_orders(text: str):
    from streamre.model.linearize import pieces_from_text
    from streamre.model.orders import parse_in_order

    return [(t.head, t.relation, t.tail) for t in parse_in_order(pieces_from_text(text))]


def test_each_order_writes_the_fields_in_its_order():
    from streamre.model.orders import ORDERS, linearize_in_order, target_in_order

    assert sorted(ORDERS) == sorted(["hrt", "htr", "rht", "rth", "trh", "thr"])
    fact = [("David Chen", "Work_For", "World Bank")]
    assert linearize_in_order(fact, "rth") == \
        "<order:rth><obj> Work_For<subj> World Bank<triplet> David Chen"
    assert target_in_order("Chen  works.", fact, "hrt") == \
        " Chen works." + FACTS + "<order:hrt><triplet> David Chen<obj> Work_For<subj> World Bank"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(words, words, words), max_size=5),
       st.sampled_from(["hrt", "htr", "rht", "rth", "trh", "thr"]))
def test_every_order_round_trips(triplets, order):
    from streamre.model.orders import linearize_in_order

    text = linearize_in_order(triplets, order).split(">", 1)[1]  # without the order token
    assert parse_orders(text) == list(dict.fromkeys(triplets))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(MARKERS), st.text(max_size=8)), max_size=30))
def test_the_order_parser_never_raises_and_yields_only_complete_triplets(pieces):
    for fields in parse_orders(" ".join(pieces)):
        assert all(fields) and not any(m in f for m in MARKERS for f in fields)


def test_an_order_cut_short_keeps_its_complete_triplets_and_drops_a_broken_one():
    from streamre.model.orders import linearize_in_order

    text = linearize_in_order([("A", "Kill", "B"), ("C", "Live_In", "D")], "trh")[11:]
    assert parse_orders(text[: text.rindex("<triplet>")]) == [("A", "Kill", "B")]
    # A field said twice before the triplet is whole starts the next triplet.
    assert parse_orders("<subj> B<obj> Kill<subj> D<obj> Live_In<triplet> C") == \
        [("C", "Live_In", "D")]
