"""The decoder's target text, and the parser of what it writes.

The model writes the transcript, then `<facts>`, then the triplets REBEL-style:
`<triplet> HEAD<subj> TAIL<obj> RELATION`; triplets that share a head are chained as
`<subj> TAIL2<obj> REL2` after the first. Each field starts with a space and none ends with one,
so it tokenizes as the same words inside a sentence would. The parser takes pieces (marker or
text, each with a log-probability) so the same code serves decoded strings and scored token
sequences; it never raises, whatever the model emits.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from streamre.triplets import Triplet

FACTS = "<facts>"  # ends the transcript; the triplets follow
TRIPLET, SUBJ, OBJ = "<triplet>", "<subj>", "<obj>"
MARKERS = (TRIPLET, SUBJ, OBJ)
TARGET_MARKERS = (FACTS,) + MARKERS  # the tokens a tokenizer must have for these targets
_MARKER_RE = re.compile("(" + "|".join(re.escape(m) for m in MARKERS) + ")")


def linearize(triplets: Iterable[tuple[str, str, str]]) -> str:
    """Triplets in order (caller sorts by head position) to target text, heads chained."""
    parts: list[str] = []
    previous_head = None
    for head, relation, tail in triplets:
        if head != previous_head:
            parts.append(f"{TRIPLET} {head.strip()}")
            previous_head = head
        parts.append(f"{SUBJ} {tail.strip()}{OBJ} {relation.strip()}")
    return "".join(parts)


def target_text(transcript: str, triplets: Iterable[tuple[str, str, str]]) -> str:
    """What the decoder learns to write after its prompt (ordered triplets, see linearize)."""
    return " " + " ".join(transcript.split()) + FACTS + linearize(triplets)


@dataclass(frozen=True)
class Piece:
    text: str  # a marker or a span of ordinary text
    logprob: float = 0.0  # summed over the piece's tokens
    tokens: int = 0


def pieces_from_text(text: str) -> list[Piece]:
    return [Piece(p) for p in _MARKER_RE.split(text) if p and (p in MARKERS or p.strip())]


def parse(text: str) -> list[Triplet]:
    return parse_pieces(pieces_from_text(text))


def parse_pieces(pieces: Sequence[Piece]) -> list[Triplet]:
    """Pieces to triplets; incomplete or malformed parts are skipped, duplicates kept once."""
    triplets: list[Triplet] = []
    seen: set[tuple[str, str, str]] = set()
    head = tail = relation = None
    field = None  # which slot the next text fills: "head", "tail" or "relation"
    scores: dict[str, tuple[float, int]] = {}

    def finish() -> None:
        if head and tail and relation:
            key = (head, relation, tail)
            if key not in seen:
                seen.add(key)
                logprob = sum(scores.get(k, (0.0, 0))[0] for k in ("head", "tail", "relation"))
                count = sum(scores.get(k, (0.0, 0))[1] for k in ("head", "tail", "relation"))
                confidence = math.exp(logprob / count) if count else 1.0
                triplets.append(Triplet(head, relation, tail, confidence))

    for piece in pieces:
        if piece.text == TRIPLET:
            finish()
            head = tail = relation = None
            scores = {}
            field = "head"
        elif piece.text == SUBJ:
            finish()
            tail = relation = None
            scores = {k: v for k, v in scores.items() if k == "head"}
            field = "tail" if head else None
        elif piece.text == OBJ:
            field = "relation" if head and tail else None
        elif field is not None:
            text = " ".join(piece.text.split())
            if not text:
                continue
            if field == "head":
                head = text
            elif field == "tail":
                tail = text
            else:
                relation = text
            scores[field] = (piece.logprob, piece.tokens)
            field = None
    finish()
    return triplets
