"""The `Triplet`, the one data type that flows from the model to the graph, and the one rule
for "the same fact" (`fact_key`) that the extractors, the ensemble's vote, the graph's edge ids
and its dedup window, and the normalised scores all use."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

ARTICLES = {"the", "a", "an"}
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b|(?<=s)['’](?=\s|$)")
_PUNCTUATION = re.compile(r"[^\w\s]")


def entity_key(text: str) -> str:
    """Canonical key of a name: case, spacing, punctuation, leading articles and possessives
    folded, so 'The World Bank's' and 'world  bank' give 'world bank'. A key is its own key,
    so the graph's node keys give the same fact ids as the names they came from."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = _PUNCTUATION.sub(" ", _POSSESSIVE.sub("", folded)).split()
    while len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words) or " ".join(folded.split())


def fact_key(head: str, relation: str, tail: str) -> tuple[str, str, str]:
    """When two triplets are the same fact: names by `entity_key`, the relation with its
    spacing folded (relations are labels, `Work_For`; their case is kept, as edge ids keep
    it)."""
    return entity_key(head), " ".join(relation.split()), entity_key(tail)


@dataclass(frozen=True)
class Triplet:
    head: str
    relation: str
    tail: str
    confidence: float = 1.0

    @property
    def key(self) -> tuple[str, str, str]:
        """This fact by `fact_key`: two triplets with one key are one fact."""
        return fact_key(self.head, self.relation, self.tail)

    def to_json(self) -> dict:
        d = asdict(self)
        d["confidence"] = round(float(self.confidence), 4)
        return d


@dataclass(frozen=True)
class Extraction:
    """What the model made of one segment: the transcript it heard and the triplets it found
    (and, for a typed sentence, the names its reader tagged)."""
    text: str
    triplets: list[Triplet]
    names: tuple[str, ...] = ()
