"""Fine-tune Whisper's encoder to hear short windows as it hears 30 s ones (ACFT), then write
the result as a transformers Whisper folder. See `streamre.training.acft` and
`docs/evaluation.md` (live captions) for how it was run and measured.

    python tools/train_acft.py --whisper runs/acft/tiny.en-hf \\
        --train runs/acft/train/manifest.jsonl --out runs/acft/run1 --steps 400
    python tools/train_acft.py --whisper runs/acft/tiny.en-hf --out runs/acft/run1 --export DIR

Run it again with the same --out to go on after an interruption.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamre.training.acft import AcftConfig, export_acft, train_acft  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whisper", required=True, help="transformers Whisper folder")
    parser.add_argument("--train", help="speech manifest whose audio it trains on")
    parser.add_argument("--out", required=True, help="run folder (state.pt, log.jsonl)")
    parser.add_argument("--export", help="write the trained Whisper folder here, and stop")
    for field in dataclasses.fields(AcftConfig):
        if field.name not in ("whisper", "train", "out"):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                                default=field.default)
    args = parser.parse_args()
    if args.export:
        print(export_acft(args.whisper, Path(args.out) / "state.pt", args.export))
        return 0
    if not args.train:
        parser.error("--train is needed to train")
    config = AcftConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AcftConfig)})
    print(json.dumps(train_acft(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
