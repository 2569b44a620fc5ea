"""`streamre eval`: predictions for a manifest, written as JSON lines, and the paper's scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from streamre.model.data import Example
from streamre.model.metrics import score
from streamre.triplets import Triplet


def predict(extractor, examples: list[Example], batch_size: int = 8,
            progress: bool = True) -> list[list[Triplet]]:
    """Triplets for every example, batched by similar length, returned in input order."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].samples))
    results: list[list[Triplet]] = [[] for _ in examples]
    with tqdm(total=len(examples), desc="eval", unit="utt", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for first in range(0, len(order), batch_size):
            chunk = order[first:first + batch_size]
            for i, triplets in zip(chunk, extractor.extract([examples[i].samples for i in chunk]),
                                   strict=True):
                results[i] = triplets
            bar.update(len(chunk))
    return results


def evaluate(extractor, examples: list[Example], batch_size: int = 8,
             predictions_path: str | Path | None = None, progress: bool = True) -> dict:
    predictions = predict(extractor, examples, batch_size, progress)
    if predictions_path is not None:
        with open(predictions_path, "w", encoding="utf-8") as f:
            for example, triplets in zip(examples, predictions, strict=True):
                f.write(json.dumps({
                    "audio": str(example.audio), "text": example.text,
                    "gold": [list(t) for t in example.triplets],
                    "predicted": [t.to_json() for t in triplets]}) + "\n")
    return score([[(t.head, t.relation, t.tail) for t in p] for p in predictions],
                 [e.triplets for e in examples])
