"""SpeechRE scores as in the paper's code: micro precision, recall and F1 over the split.

Per sample: ER compares the sets of head and tail strings (no types), RP the sets of relation
labels, RTE the sets of exact (head, relation, tail). `normalised=True` scores the same by the
package's one rule for the same fact (`fact_key`): each name's case, punctuation, leading article
(the, a, an) and possessive set aside, so "the World Bank" matches "World Bank" and "Calif"
matches "Calif.": a heard transcript rarely keeps a dataset's spelling conventions. For
transcripts, the word error rate after a light normalisation: case, punctuation, spacing.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from streamre.triplets import fact_key

Triple = tuple[str, str, str]


def _views(triplets: Iterable[Sequence[str]], normalised: bool = False) -> dict[str, set]:
    triplets = [tuple(t) for t in triplets]
    if normalised:
        triplets = [fact_key(h, r, t) for h, r, t in triplets]
    return {"ER": {x for h, _, t in triplets for x in (h, t)},
            "RP": {r for _, r, _ in triplets},
            "RTE": set(triplets)}


def score(predictions: list[Iterable[Sequence[str]]], golds: list[Iterable[Sequence[str]]],
          normalised: bool = False) -> dict:
    if len(predictions) != len(golds):
        raise ValueError("one prediction per gold sample")
    counts = {k: [0, 0, 0] for k in ("ER", "RP", "RTE")}  # true positives, predicted, gold
    for predicted, gold in zip(predictions, golds, strict=True):
        p, g = _views(predicted, normalised), _views(gold, normalised)
        for k, c in counts.items():
            c[0] += len(p[k] & g[k])
            c[1] += len(p[k])
            c[2] += len(g[k])
    result: dict = {}
    for k, (tp, n_pred, n_gold) in counts.items():
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[k] = {"p": round(precision, 4), "r": round(recall, 4), "f1": round(f1, 4)}
    result["n"] = len(golds)
    return result


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def normalise_transcript(text: str) -> str:
    """Lower case, punctuation to spaces (apostrophes inside words kept), single spaces."""
    text = re.sub(r"[^\w\s']|(?<!\w)'|'(?!\w)", " ", text.casefold())
    return " ".join(text.split())


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Word edits over reference words, summed over the split (micro WER), normalised text."""
    if len(hypotheses) != len(references):
        raise ValueError("one hypothesis per reference")
    hyps = [normalise_transcript(h).split() for h in hypotheses]
    refs = [normalise_transcript(r).split() for r in references]
    edits = sum(edit_distance(h, r) for h, r in zip(hyps, refs, strict=True))
    return edits / max(1, sum(len(r) for r in refs))
