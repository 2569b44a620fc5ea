"""The `Triplet`, the one data type that flows from the model to the graph, and the one rule
for "the same fact" (`fact_key`) that the extractors, the ensemble's vote, the graph's edge ids
and its dedup window, and the normalised scores all use."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field

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


# What a reader's entity tags say a name is, as PROTOCOL.md's node `type` names it.
ENTITY_TYPES = {"Peop": "person", "Org": "organisation", "Loc": "location", "Other": "other"}


@dataclass(frozen=True)
class Triplet:
    """A fact: head, relation, tail, the confidence it was found with, and what its reader
    tagged each name as (`ENTITY_TYPES`' values; None where it says nothing). The types are
    not part of the fact: two triplets that differ only there are equal."""
    head: str
    relation: str
    tail: str
    confidence: float = 1.0
    head_type: str | None = field(default=None, compare=False)
    tail_type: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """This fact by `fact_key`: two triplets with one key are one fact."""
        return fact_key(self.head, self.relation, self.tail)

    def to_json(self) -> dict:
        d = asdict(self)
        d["confidence"] = round(float(self.confidence), 4)
        for typed in ("head_type", "tail_type"):
            if d[typed] is None:  # only what a reader tagged
                del d[typed]
        return d

    def to_row(self) -> list:
        """As the journal and the cluster's ops keep it: [head, relation, tail, confidence],
        and the two types where either is known."""
        row = [self.head, self.relation, self.tail, self.confidence]
        return row + [self.head_type, self.tail_type] if self.head_type or self.tail_type \
            else row

    @classmethod
    def from_row(cls, row: list) -> Triplet:
        """A triplet from `to_row` (four fields, or six); ValueError or TypeError if not."""
        if len(row) not in (4, 6):
            raise ValueError(f"a triplet row has 4 or 6 fields, not {len(row)}")
        head, relation, tail, confidence, *types = row
        head_type, tail_type = types or (None, None)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise TypeError(f"not a confidence: {confidence!r}")
        return cls(str(head), str(relation), str(tail), float(confidence),
                   None if head_type is None else str(head_type),
                   None if tail_type is None else str(tail_type))


@dataclass(frozen=True)
class Extraction:
    """What the model made of one segment: the transcript it heard and the triplets it found
    (and, for a typed sentence, the names its reader tagged)."""
    text: str
    triplets: list[Triplet]
    names: tuple[str, ...] = ()
