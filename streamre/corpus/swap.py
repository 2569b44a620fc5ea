"""Entity swaps: new sentences from old ones, the names in their facts replaced by others.

A small training set lets a model learn its facts by heart ("Oswald killed Kennedy") instead of
learning to copy whatever names it hears into the facts. A swapped variant keeps the sentence
and its relations and changes the names that are heads or tails of its facts: "Boston" may
become "Dallas", "David Chen" "Maria Lopez". Replacements are drawn from the same sentences'
fact arguments of the same entity type, so the facts keep pointing at the right words; other
entities (dates, amounts) stay, so the sentence still reads as one. A pure function of its
input and seed.
"""

from __future__ import annotations

import random
from collections import defaultdict

from streamre.corpus.sources import Entity, Sentence


def swap_entities(sentences: list[Sentence], variants: int, seed: int = 0) -> list[Sentence]:
    """`variants` swapped copies of every sentence with typed entities in its facts."""
    pool: dict[str, list[str]] = defaultdict(list)
    for sentence in sentences:
        for entity in _arguments(sentence):
            if entity.text not in pool[entity.type]:
                pool[entity.type].append(entity.text)
    swapped = []
    for sentence in sentences:
        arguments = _arguments(sentence)
        if not arguments:
            continue
        rng = random.Random(f"{seed}/{sentence.id}")
        for k in range(variants):
            names: dict[str, str] = {}
            for entity in arguments:
                if entity.text not in names:
                    # Two names of a sentence never become one: "X killed X" is no fact.
                    others = [n for n in pool[entity.type]
                              if n != entity.text and n not in names.values()]
                    names[entity.text] = rng.choice(others) if others else entity.text
            swapped.append(_rewrite(sentence, names, f"{sentence.id}/swap{k}"))
    return swapped


def _arguments(sentence: Sentence) -> list[Entity]:
    """The typed entities that are heads or tails of the sentence's facts."""
    named = {part for h, _, t in sentence.triplets for part in (h, t)}
    return [e for e in sentence.entities if e.type and e.text in named]


def _rewrite(sentence: Sentence, names: dict[str, str], new_id: str) -> Sentence:
    """The sentence with entity texts replaced as `names` says, spans and facts moved."""
    text, entities, at = "", [], 0
    for entity in sorted(sentence.entities, key=lambda e: e.start):
        if entity.start < at:  # overlapping spans: keep the first, skip the rest
            continue
        name = names.get(entity.text, entity.text)
        text += sentence.text[at:entity.start]
        entities.append(Entity(name, len(text), len(text) + len(name), entity.type))
        text += name
        at = entity.end
    text += sentence.text[at:]
    triplets = tuple((names.get(h, h), r, names.get(t, t)) for h, r, t in sentence.triplets)
    return Sentence(new_id, text, triplets, tuple(entities))
