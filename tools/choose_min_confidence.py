"""Chooses, on dev, the least confidence a text model's facts need, and writes it into the
model's config.json, as `streamre train-text` does for the epoch it keeps.

    python tools/choose_min_confidence.py --model DIR --dev A.json B.json ...

For a checkpoint trained before `train-text` chose it (the bundled reader was). Give the dev
sources its training selected on (its `training.json` names them). Prints the dev scores with
every fact kept and at the chosen threshold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamre.inference.text_extractor import TextExtractor
from streamre.training.evaluate import read_text, scores_of
from streamre.training.text import at_least, choose_min_confidence, read_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a `streamre train-text` folder")
    parser.add_argument("--dev", required=True, nargs="+", help="SpERT JSON sources")
    args = parser.parse_args()
    reader = TextExtractor.load(args.model, "cpu", "float32")
    config = reader.model.config
    config.min_confidence = 0.0
    examples = read_examples(tuple(args.dev), list(config.entity_types),
                             list(config.relation_types))
    found = read_text(reader, [e.text for e in examples])
    chosen = choose_min_confidence(found, examples)
    for label, threshold in (("every fact", 0.0), (f"at least {chosen}", chosen)):
        rte = scores_of(at_least(found, threshold), examples)["RTE"]
        print(f"dev RTE, {label}: {json.dumps(rte)}")
    path = Path(args.model) / "config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved["min_confidence"] = chosen
    path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote min_confidence {chosen} to {path}")


if __name__ == "__main__":
    main()
