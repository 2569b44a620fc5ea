"""Probe: would a better transcript give better facts?

The model writes its transcript, then `<facts>`, then the triplets, all in one decoded sequence.
Here the transcript part is forced (given to the decoder as part of its prompt) and only the
facts are decoded, under three conditions on the same utterances:

- `free`: nothing forced, as the product runs;
- `gold`: the manifest's own text: the ceiling of better hearing;
- `zeroshot`: what the original pretrained Whisper writes for the audio, padded to its 30 s
  window (the transcript a two-model pipeline would have).

Prints ER, RP and RTE F1 and the forced transcripts' WER per condition; writes them as JSON.

    .venv/bin/python benchmarks/probe_transcript_prefix.py --data corpus/conll04/dev_slt.jsonl \\
        --model models/streamre-whisper-tiny-conll04 --whisper runs/whisper-tiny.en --out probe.json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from streamre.model.extractor import ModelExtractor
from streamre.model.linearize import FACTS
from streamre.training.data import read_manifest
from streamre.training.scores import score, word_error_rate
from streamre.pretrained import load_pretrained

CONDITIONS = ("free", "gold", "zeroshot")


def zero_shot_transcripts(whisper: str, examples) -> list[str]:
    """The original Whisper's transcripts, padded to 30 s as it was trained."""
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # not a warning per utterance about generate's defaults
    model = load_pretrained(WhisperForConditionalGeneration, whisper).eval()
    tokenizer = AutoTokenizer.from_pretrained(whisper)
    features = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    texts = []
    for e in examples:
        mel = features(e.samples.astype("float32") / 32768, sampling_rate=16000,
                       return_tensors="pt").input_features
        with torch.inference_mode():
            ids = model.generate(mel, max_new_tokens=200)
        texts.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    return texts


def facts_after(extractor: ModelExtractor, samples, transcript: str):
    """Decode only the facts, with `transcript` and `<facts>` forced after the prompt."""
    model, tokenizer = extractor.model, extractor.tokenizer
    prompt = list(model.config.decoder_prompt)
    facts = tokenizer.convert_tokens_to_ids(FACTS)
    forced = tokenizer(" " + " ".join(transcript.split()), add_special_tokens=False).input_ids
    model.config.decoder_prompt = prompt + forced + [facts]
    try:
        values, mask = model.prepare_waveforms([samples])
        ids, logprobs = model.generate_tokens(values, mask, extractor.max_new_tokens)
    finally:
        model.config.decoder_prompt = prompt
    return extractor.read([facts] + ids[0], [0.0] + logprobs[0]).triplets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("--whisper", help="the original Whisper folder (for zeroshot)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    conditions = args.conditions.split(",")
    extractor = ModelExtractor.load(args.model or None, "cpu")
    # The forced prompt and the audio must fit one window: longer utterances are left out.
    examples = [e for e in read_manifest(args.data) if len(e.samples) < extractor.model.window_samples]
    golds = [[tuple(t) for t in e.triplets] for e in examples]
    references = [e.text for e in examples]
    zeroshot = zero_shot_transcripts(args.whisper, examples) if "zeroshot" in conditions else []
    results = {"n": len(examples)}
    for condition in conditions:
        if condition == "free":
            answers = extractor.extract([e.samples for e in examples])
            transcripts = [a.text for a in answers]
            found = [a.triplets for a in answers]
        else:
            transcripts = references if condition == "gold" else zeroshot
            found = [facts_after(extractor, e.samples, t) for e, t in
                     zip(examples, transcripts, strict=True)]
        scores = score([[(t.head, t.relation, t.tail) for t in f] for f in found], golds)
        results[condition] = {k: scores[k]["f1"] for k in ("ER", "RP", "RTE")} | {
            "WER": round(word_error_rate(transcripts, references), 4)}
        print(condition, json.dumps(results[condition]), file=sys.stderr, flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
