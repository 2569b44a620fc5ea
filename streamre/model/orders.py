"""The facts in several element orders (after RPG-MoGe): one decoder learns to write each
triplet's head (h), relation (r) and tail (t) in any of the six orders, an order-prompt token
saying which, and at inference every order is decoded and the orders vote.

After `<facts>` comes the order's token, then each triplet whole, its fields in that order,
each after the marker of its kind (REBEL's markers, given fixed meanings: `<triplet>` before
the head, `<subj>` before the tail, `<obj>` before the relation):

    <facts><order:rht><obj> Work_For<triplet> David Chen<subj> World Bank

The parser needs no order: a triplet is done when its three fields are filled, and a field
filled twice starts the next one.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable, Sequence

from streamre.model.linearize import FACTS, OBJ, SUBJ, TRIPLET, Piece
from streamre.triplets import Triplet

ORDERS = tuple("".join(p) for p in itertools.permutations("hrt"))  # hrt htr rht rth thr trh
FIELD_MARKERS = {"h": TRIPLET, "t": SUBJ, "r": OBJ}
_FIELD_OF = {marker: field for field, marker in FIELD_MARKERS.items()}


def order_token(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"an order is one of {', '.join(ORDERS)}, not {order!r}")
    return f"<order:{order}>"


def linearize_in_order(triplets: Iterable[tuple[str, str, str]], order: str) -> str:
    """The order's token, then each triplet's fields in that order (caller sorts triplets)."""
    parts = [order_token(order)]
    for head, relation, tail in triplets:
        fields = {"h": head, "r": relation, "t": tail}
        parts += [f"{FIELD_MARKERS[f]} {' '.join(fields[f].split())}" for f in order]
    return "".join(parts)


def target_in_order(transcript: str, triplets: Iterable[tuple[str, str, str]], order: str
                    ) -> str:
    """What the decoder learns to write after its prompt, with the facts in `order`."""
    return " " + " ".join(transcript.split()) + FACTS + linearize_in_order(triplets, order)


def parse_in_order(pieces: Sequence[Piece]) -> list[Triplet]:
    """Pieces (markers and scored text spans) to triplets, whatever their order; incomplete
    triplets are dropped, duplicates kept once. Never raises."""
    triplets: list[Triplet] = []
    seen: set[tuple[str, str, str]] = set()
    fields: dict[str, tuple[str, float, int]] = {}
    current = None  # the field the next text fills

    for piece in pieces:
        if piece.text in _FIELD_OF:
            current = _FIELD_OF[piece.text]
            if current in fields:  # filled already: the last triplet was left incomplete
                fields = {}
            continue
        text = " ".join(piece.text.split())
        if current is None or not text:
            continue
        fields[current] = (text, piece.logprob, piece.tokens)
        current = None
        if len(fields) == 3:
            key = (fields["h"][0], fields["r"][0], fields["t"][0])
            tokens = sum(f[2] for f in fields.values())
            confidence = math.exp(sum(f[1] for f in fields.values()) / tokens) if tokens else 1.0
            if key not in seen:
                seen.add(key)
                triplets.append(Triplet(*key, confidence))
            fields = {}
    return triplets
