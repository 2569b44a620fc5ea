"""`streamre eval`: predictions for a manifest, written as JSON lines, the paper's scores, and
the word error rate of the transcripts the model wrote on the way.

Three paths can be measured on the same manifest: speech end to end (the speech model's own
triplets), speech through a pipeline (the speech model's transcript, then the text extractor),
and the gold text through the text extractor."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from streamre.inference.seam import read_sentences
from streamre.training.data import Example
from streamre.training.scores import score, word_error_rate
from streamre.triplets import Extraction


def predict(extractor, examples: list[Example], batch_size: int = 8,
            progress: bool = True) -> list[Extraction]:
    """The extraction of every example, batched by similar length, returned in input order."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].samples))
    results: list = [None] * len(examples)
    with tqdm(total=len(examples), desc="eval", unit="utt", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for first in range(0, len(order), batch_size):
            chunk = order[first:first + batch_size]
            answers = extractor.extract([examples[i].samples for i in chunk])
            for i, answer in zip(chunk, answers, strict=True):
                results[i] = answer
            bar.update(len(chunk))
    return results


def read_text(text_extractor, texts: list[str], batch_size: int = 32) -> list[Extraction]:
    """The text extractor's triplets for each text, as extractions of that text."""
    found: list[Extraction] = []
    for first in range(0, len(texts), batch_size):
        found += read_sentences(text_extractor, texts[first:first + batch_size])
    return found


def evaluate(extractor, examples: list[Example], batch_size: int = 8,
             predictions_path: str | Path | None = None, progress: bool = True,
             text_extractor=None) -> dict:
    """ER, RP and RTE micro scores (the paper's, exact strings), the same under
    `normalised` (case, punctuation and leading articles set aside), the transcripts' WER (and
    `WER_no_facts`, on the utterances that state no fact, and `WER_no_names`, on those the
    manifest says name no entity), and the count of utterances.

    With `text_extractor`: the triplets are the text extractor's, read from the speech
    model's transcripts (a pipeline), or from the manifest's gold text when `extractor` is
    None (then no WER)."""
    if extractor is None:
        predictions = read_text(text_extractor, [e.text for e in examples])
    else:
        predictions = predict(extractor, examples, batch_size, progress)
        if text_extractor is not None:
            predictions = read_text(text_extractor, [p.text for p in predictions])
    if predictions_path is not None:
        with open(predictions_path, "w", encoding="utf-8") as f:
            for example, extraction in zip(examples, predictions, strict=True):
                f.write(json.dumps({
                    "audio": str(example.audio), "text": example.text,
                    "transcript": extraction.text,
                    "gold": [list(t) for t in example.triplets],
                    "predicted": [t.to_json() for t in extraction.triplets]}) + "\n")
    return scores_of(predictions, examples, heard=extractor is not None)


def scores_of(predictions: list[Extraction], examples: list, heard: bool = False) -> dict:
    """`evaluate`'s scores of extractions already made, one for each example (anything with
    `text` and `triplets`); with `heard`, the extractions' texts are transcripts, and their
    WER is scored too."""
    found = [[(t.head, t.relation, t.tail) for t in p.triplets] for p in predictions]
    scores = score(found, [e.triplets for e in examples])
    summary = {k: v for k, v in scores.items() if k != "n"}
    normalised = score(found, [e.triplets for e in examples], normalised=True)
    summary["normalised"] = {k: v for k, v in normalised.items() if k != "n"}
    if heard:
        wer = word_error_rate([p.text for p in predictions], [e.text for e in examples])
        summary["WER"] = round(wer, 4)
        # Where nothing is to be found, a prompt of names can only add words: measured apart.
        quiet = [i for i, e in enumerate(examples) if not e.triplets]
        if quiet:
            summary["WER_no_facts"] = round(word_error_rate(
                [predictions[i].text for i in quiet], [examples[i].text for i in quiet]), 4)
        # Where no name was said, names given to hearing can only do harm: measured apart.
        nameless = [i for i, e in enumerate(examples) if e.entities == []]
        if nameless:
            summary["WER_no_names"] = round(word_error_rate(
                [predictions[i].text for i in nameless], [examples[i].text for i in nameless]), 4)
    return {**summary, "n": scores["n"]}
