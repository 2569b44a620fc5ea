"""`streamre synth`: render sentences with facts as a speech corpus and its manifest.

Every utterance is a pure function of (seed, sentence id, copy number): its voice, augmentation
and file name are derived from those alone, so a run gives the same corpus whatever the number
of worker processes or the order they finish in. Files are written to a temporary name and
renamed, so an interrupted run leaves only whole files; running again renders what is missing and
rewrites the manifest (in sentence order) at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamre.corpus.augment import Augmentation, augment
from streamre.corpus.sources import Sentence
from streamre.corpus.voices import Voice, check_engines, parse_voice, training_voice

AUDIO_FORMATS = ("flac", "wav")


@dataclass(frozen=True)
class Utterance:
    sentence: Sentence
    copy: int
    voice: Voice
    audio: str  # path relative to the corpus folder
    seed: int  # for the augmentation generator


@dataclass(frozen=True)
class SynthPlan:
    utterances: list[Utterance]
    out: Path
    augmentation: Augmentation


def plan(sentences: list[Sentence], out: str | Path, voices: list[str] | str = "train",
         copies: int = 1, seed: int = 0, audio_format: str = "flac",
         augmentation: Augmentation | None = None) -> SynthPlan:
    """Decide every utterance: `voices` is "train" (draw from the training pool) or a list of specs.

    With a list, copy k of a sentence uses voice k mod len(list).
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio format must be one of {', '.join(AUDIO_FORMATS)}")
    if copies < 1:
        raise ValueError("copies must be at least 1")
    pool = voices == "train"
    fixed = [] if pool else [parse_voice(v) for v in voices]
    if not pool and not fixed:
        raise ValueError("no voices given")
    check_engines(fixed, training_pool=pool)
    utterances = []
    for sentence in sentences:
        for copy in range(copies):
            key = f"{seed}:{sentence.id}:{copy}"
            rng = random.Random(key)
            voice = training_voice(rng) if pool else fixed[copy % len(fixed)]
            digest = hashlib.sha1(f"{key}:{voice.spec}".encode()).hexdigest()[:10]
            name = sentence.id.replace("/", "-")
            utterances.append(Utterance(sentence, copy, voice,
                                        f"audio/{name}-{copy}-{digest}.{audio_format}",
                                        int(digest, 16)))
    return SynthPlan(utterances, Path(out), augmentation or Augmentation())


def render(utterance: Utterance, out: Path, augmentation: Augmentation) -> dict:
    """Render one utterance unless its file is already there; returns its manifest line."""
    import soundfile

    path = out / utterance.audio
    rng = np.random.default_rng(utterance.seed)
    params = augmentation.draw(rng)
    if path.exists():  # rendered by an earlier, interrupted run
        frames = soundfile.info(str(path)).frames
    else:
        samples = augment(utterance.voice.render(utterance.sentence.text), params, rng)
        tmp = path.with_name(path.stem + ".partial" + path.suffix)
        soundfile.write(str(tmp), samples, 16000, subtype="PCM_16")
        os.replace(tmp, path)
        frames = len(samples)
    s = utterance.sentence
    return {
        "audio": utterance.audio, "text": s.text, "triplets": [list(t) for t in s.triplets],
        "entities": [{"text": e.text, "start": e.start, "end": e.end, "type": e.type}
                     for e in s.entities],
        "speaker": utterance.voice.speaker, "voice": utterance.voice.spec,
        "sentence": s.id, "copy": utterance.copy, "duration_s": round(frames / 16000, 3),
        **({"augment": params} if params else {}),
    }


def run(synth: SynthPlan, manifest: str = "manifest.jsonl", jobs: int | None = None,
        progress: bool = True) -> Path:
    """Render every planned utterance with `jobs` processes and write the manifest last."""
    from tqdm import tqdm

    (synth.out / "audio").mkdir(parents=True, exist_ok=True)
    for stale in (synth.out / "audio").glob("*.partial.*"):  # cut off mid-write last time
        stale.unlink()
    jobs = jobs or os.cpu_count() or 1
    lines: list[dict | None] = [None] * len(synth.utterances)
    with ProcessPoolExecutor(max_workers=jobs) as pool, \
            tqdm(total=len(lines), unit="utt", desc="synth", disable=not progress) as bar:
        futures = {pool.submit(render, u, synth.out, synth.augmentation): i
                   for i, u in enumerate(synth.utterances)}
        for future in as_completed(futures):
            lines[futures[future]] = future.result()
            bar.update()
    path = synth.out / manifest
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path
