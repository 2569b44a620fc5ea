"""The `Triplet`, the one data type that flows from the model to the graph."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Triplet:
    head: str
    relation: str
    tail: str
    confidence: float = 1.0

    def to_json(self) -> dict:
        d = asdict(self)
        d["confidence"] = round(float(self.confidence), 4)
        return d


@dataclass(frozen=True)
class Extraction:
    """What the model made of one segment: the transcript it heard and the triplets it found."""
    text: str
    triplets: list[Triplet]
