"""Canonical entities: one node for every way a name is said or spelled.

`entity_key` (one rule for the whole package, in `streamre.triplets`) folds case, whitespace,
punctuation, a leading article and possessives. The
`EntityResolver` also merges near-identical keys ("david chenn" → "david chen") with rapidfuzz,
guarded: short names must match exactly, numbers in names must be equal, and names of
different entity types never merge. A
node's label is its most frequent surface form; the others are kept as aliases.
"""

from __future__ import annotations

import re
from collections import Counter

from rapidfuzz import fuzz, process

from streamre.triplets import entity_key

_DIGITS = re.compile(r"\d+")


class EntityResolver:
    def __init__(self, fuzzy_threshold: float = 92.0, min_fuzzy_length: int = 6) -> None:
        self.fuzzy_threshold = fuzzy_threshold
        self.min_fuzzy_length = min_fuzzy_length
        self._surfaces: dict[str, Counter] = {}  # node key -> surface form counts
        self._types: dict[str, str | None] = {}
        self._aliases: dict[tuple[str, str | None], str] = {}  # (key, type) -> node key

    def lookup(self, surface: str, entity_type: str | None = None) -> str | None:
        """The existing node a mention would resolve to, or None; records nothing."""
        key = entity_key(surface)
        return self._aliases.get((key, entity_type)) or self._fuzzy(key, entity_type)

    def resolve(self, surface: str, entity_type: str | None = None) -> str:
        """The node key for a mention, creating a node when nothing matches; counts the form.

        A typed entity's key carries its type, so "Boston" the city and "Boston" the team are
        two nodes.
        """
        key = entity_key(surface)
        node = self.lookup(surface, entity_type) or \
            (key if entity_type is None else f"{key}#{entity_type.casefold()}")
        self._aliases[(key, entity_type)] = node
        self._types.setdefault(node, entity_type)
        self._surfaces.setdefault(node, Counter())[" ".join(surface.split())] += 1
        return node

    def _fuzzy(self, key: str, entity_type: str | None) -> str | None:
        if len(key) < self.min_fuzzy_length:
            return None  # "Li" and "Lu" are different people
        digits = _DIGITS.findall(key)  # "Flight 1234" is never "Flight 1235"
        candidates = {k: node for (k, t), node in self._aliases.items()
                      if t == entity_type and len(k) >= self.min_fuzzy_length
                      and _DIGITS.findall(k) == digits}
        match = process.extractOne(key, list(candidates), scorer=fuzz.ratio,
                                   score_cutoff=self.fuzzy_threshold)
        return candidates[match[0]] if match else None

    def keys_of(self, node: str) -> list[str]:
        """Every key that resolves to `node`: its own and its near spellings'."""
        return sorted({key for (key, _), n in self._aliases.items() if n == node})

    def label(self, node: str) -> str:
        """Most frequent surface form; ties go to the alphabetically first (order-free)."""
        counts = self._surfaces[node]
        return min(counts, key=lambda s: (-counts[s], s))

    def aliases(self, node: str) -> list[str]:
        label = self.label(node)
        return sorted(s for s in self._surfaces[node] if s != label)

    def entity_type(self, node: str) -> str | None:
        return self._types.get(node)
