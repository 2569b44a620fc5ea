"""Writes training or dev sentences as Whisper heard them, for `streamre train-text`.

    streamre eval --data M.jsonl --predictions P.jsonl     # hears every utterance
    python tools/make_heard_set.py --manifest M.jsonl --predictions P.jsonl --out H.json

The manifest (from `streamre synth`) gives each utterance's typed entities and facts, the
predictions its transcript; `streamre.corpus.heard` finds the entities in the transcript and
keeps the facts whose both ends survived. Writes SpERT JSON, and prints what survived.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamre.corpus.heard import HeardStats, heard_sentence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="the utterances (streamre synth)")
    parser.add_argument("--predictions", required=True, help="streamre eval --predictions")
    parser.add_argument("--out", required=True, help="SpERT JSON to write")
    parser.add_argument("--threshold", type=float, default=70.0,
                        help="how close (0-100) heard words must be to an entity to stand for it")
    args = parser.parse_args()
    utterances = [json.loads(line) for line in open(args.manifest, encoding="utf-8")]
    heard = [json.loads(line) for line in open(args.predictions, encoding="utf-8")]
    if len(utterances) != len(heard):
        raise SystemExit(f"{len(utterances)} utterances but {len(heard)} predictions")
    stats, items = HeardStats(), []
    for utterance, answer in zip(utterances, heard, strict=True):
        if Path(utterance["audio"]).name != Path(answer["audio"]).name:
            raise SystemExit(f"predictions are not in the manifest's order: {answer['audio']}")
        items.append(heard_sentence(answer["transcript"], utterance["entities"],
                                    utterance["triplets"], args.threshold, stats))
    Path(args.out).write_text(json.dumps(items, indent=0) + "\n", encoding="utf-8")
    print(json.dumps(stats.to_json(), indent=1))


if __name__ == "__main__":
    main()
