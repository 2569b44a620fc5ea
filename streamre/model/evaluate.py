"""`streamre eval`: predictions for a manifest, written as JSON lines, and the paper's scores;
and the transcripts of an ASR-stage model, for its character error rate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from streamre.model.data import Example
from streamre.model.metrics import character_error_rate, score
from streamre.triplets import Triplet


def predict(extractor, examples: list[Example], batch_size: int = 8,
            progress: bool = True) -> list[list[Triplet]]:
    """Triplets for every example, batched by similar length, returned in input order."""
    return _batched_by_length(extractor.extract, examples, batch_size, progress)


def transcribe(model, tokenizer, examples: list[Example], batch_size: int = 8,
               max_new_tokens: int = 160, progress: bool = False) -> list[str]:
    """Greedy transcripts of a model trained with `--stage asr` (its target is the text)."""
    device = next(model.parameters()).device

    def decode(waveforms):
        values, mask = model.prepare_waveforms(waveforms, device)
        ids, _ = model.generate_tokens(values, mask, max_new_tokens)
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    return _batched_by_length(decode, examples, batch_size, progress)


def transcript_scores(model, tokenizer, examples: list[Example], batch_size: int = 8) -> dict:
    """Character error rate of the greedy transcripts, with the first three for a look."""
    hypotheses = transcribe(model, tokenizer, examples, batch_size)
    references = [e.text for e in examples]
    return {"cer": round(character_error_rate(hypotheses, references), 4),
            "samples": [{"ref": r, "hyp": h}
                        for r, h in zip(references[:3], hypotheses[:3], strict=True)]}


def _batched_by_length(run, examples: list[Example], batch_size: int, progress: bool) -> list:
    """`run` on batches of similar-length waveforms; its results in input order."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].samples))
    results: list = [None] * len(examples)
    with tqdm(total=len(examples), desc="eval", unit="utt", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for first in range(0, len(order), batch_size):
            chunk = order[first:first + batch_size]
            for i, result in zip(chunk, run([examples[i].samples for i in chunk]), strict=True):
                results[i] = result
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
