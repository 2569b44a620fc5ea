"""Voting between the facts a model wrote in several element orders (RPG-MoGe): a triplet is
kept when at least `min_votes` orders wrote it. Votes are counted by `Triplet.key` (the one rule
for the same fact), so "the World Bank" and "World Bank" agree.

The papers named here: `docs/papers.md`.
"""

from __future__ import annotations

from streamre.triplets import Triplet


def vote(found_in_each_order: list[list[Triplet]], min_votes: int = 2) -> list[Triplet]:
    """The triplets at least `min_votes` orders agree on (all of them, when fewer orders were
    asked), in the order first written, as the first order to write each spelled it. Its
    confidence is the model's mean confidence over the orders that wrote it, times the share
    of orders that did."""
    orders = len(found_in_each_order)
    needed = min(min_votes, orders)
    ballots: dict[tuple[str, str, str], list[Triplet]] = {}
    for found in found_in_each_order:
        for key in dict.fromkeys(t.key for t in found):  # one vote per order
            ballots.setdefault(key, []).append(next(t for t in found if t.key == key))
    kept = []
    for votes in ballots.values():
        if len(votes) >= needed:
            mean = sum(t.confidence for t in votes) / len(votes)
            first = votes[0]
            kept.append(Triplet(first.head, first.relation, first.tail,
                                mean * len(votes) / orders))
    return kept
