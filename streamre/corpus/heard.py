"""Training sentences as Whisper heard them, for a reader that must read heard text.

Each gold entity is found again in the transcript: the run of heard words closest to it
(`streamre.hearing.vocabulary.matches`, letters or sound, runs apart), kept if it is at least
`threshold` close. The entity then takes the heard spelling ("Anishmet" for "Anna Schmidt"):
the reader learns where names stand in heard text, not how they are spelled. Every entity
found is tagged; a fact is kept when both its entities were found, and dropped otherwise.
Sentences are written as SpERT JSON, which `train-text` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamre.corpus.sources import TOKEN
from streamre.hearing.vocabulary import apart, matches


@dataclass
class HeardStats:
    sentences: int = 0
    facts: int = 0
    facts_kept: int = 0
    entities: int = 0
    entities_found: int = 0
    dropped: list[str] = field(default_factory=list)  # a few lost entities, to read

    def to_json(self) -> dict:
        return {"sentences": self.sentences, "facts": self.facts, "facts_kept": self.facts_kept,
                "entities": self.entities, "entities_found": self.entities_found,
                "lost_examples": self.dropped[:20]}


def heard_sentence(transcript: str, entities: list[dict], triplets: list, threshold: float,
                   stats: HeardStats | None = None) -> dict:
    """One SpERT item of the transcript with the gold `entities` ({text, type}) found in it
    and the `triplets` ([head, relation, tail] by entity text) whose both ends were found."""
    stats = stats if stats is not None else HeardStats()
    names = list(dict.fromkeys(e["text"] for e in entities))
    types = {e["text"]: e["type"] for e in entities}
    found = {m.phrase: m for m in apart(matches(transcript, names, threshold, named_ends=0))}
    tokens = [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(transcript)]
    spans = {}
    for name, m in found.items():
        inside = [i for i, (_, start, end) in enumerate(tokens) if start >= m.start and
                  end <= m.end]
        inside = _trimmed(inside, [t for t, _, _ in tokens], name)
        if inside:
            spans[name] = (inside[0], inside[-1] + 1)
    kept = [t for t in triplets if t[0] in spans and t[2] in spans]
    stats.sentences += 1
    stats.facts += len(triplets)
    stats.facts_kept += len(kept)
    stats.entities += len(names)
    stats.entities_found += len(spans)
    stats.dropped += [f"{n!r} in {transcript!r}" for n in names if n not in spans]
    order = list(spans)
    return {"tokens": [t for t, _, _ in tokens],
            "entities": [{"type": types[n], "start": spans[n][0], "end": spans[n][1]}
                         for n in order],
            "relations": [{"type": r, "head": order.index(h), "tail": order.index(t)}
                          for h, r, t in kept]}


SMALL_WORDS = {"a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with",
               "and", "or", ",", ".", "-"}


def _trimmed(inside: list[int], words: list[str], name: str) -> list[int]:
    """The run without small words at its edges that the name does not have there: "of
    Phoenix" stands for "Phoenix"."""
    first, last = name.split()[0].casefold(), name.split()[-1].casefold()
    while len(inside) > 1 and words[inside[0]].casefold() in SMALL_WORDS - {first}:
        inside = inside[1:]
    while len(inside) > 1 and words[inside[-1]].casefold() in SMALL_WORDS - {last}:
        inside = inside[:-1]
    return inside
