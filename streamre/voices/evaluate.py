"""`streamre eval-voices`: tell the voices of recorded streams apart as `serve` does, and score
it against who really spoke (`streamre.voices.scoring`).

A stream is `<name>.wav` beside `<name>.json` ({"turns": [{start, end, speaker}], ...}, as
`tools/make_voice_streams.py` writes them). The VAD cuts it as the server does, the encoder
embeds every segment once, and the clusterer numbers them at each threshold asked for, so a
sweep costs one pass of the encoder.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from streamre import SAMPLE_RATE
from streamre.audio import Segment, VadConfig, VadSegmenter, read_audio
from streamre.voices.clusterer import VoiceClusterer, VoiceSettings
from streamre.voices.encoder import SpeakerEncoder
from streamre.voices.scoring import Line, Turn, VoiceScore, score

EMBED_BATCH = 16


def segments(audio: np.ndarray, vad: VadConfig) -> list[Segment]:
    segmenter = VadSegmenter(vad)
    events = segmenter.feed(audio) + segmenter.flush()
    return [e for e in events if isinstance(e, Segment)]


def streams(folder: Path) -> list[Path]:
    found = sorted(p for p in folder.glob("*.json") if p.with_suffix(".wav").is_file())
    if not found:
        raise FileNotFoundError(f"no <name>.wav with <name>.json in {folder}")
    return found


def evaluate(folder: str | Path, choices: list[VoiceSettings], vad: VadConfig | None = None,
             progress: bool = True) -> dict:
    """Per stream and per kind of stream (`v<voices>-<pauses>`), each choice of settings'
    scores, keyed `<threshold>/<heard_once>`."""
    encoder = SpeakerEncoder()
    vad = vad or VadConfig()
    per_stream: dict[str, dict[str, dict]] = {}
    totals: dict[str, dict[str, list[VoiceScore]]] = defaultdict(lambda: defaultdict(list))
    for truth in tqdm(streams(Path(folder)), desc="streams", disable=not progress):
        spec = json.loads(truth.read_text())
        turns = [Turn(float(t["start"]), float(t["end"]), str(t["speaker"]))
                 for t in spec["turns"]]
        cut = segments(read_audio(truth.with_suffix(".wav")), vad)
        embeddings = np.concatenate([encoder.embed([s.audio for s in cut[i:i + EMBED_BATCH]])
                                     for i in range(0, len(cut), EMBED_BATCH)])
        kind = truth.stem.rsplit("-", 1)[0] if truth.stem.count("-") > 1 else truth.stem
        per_stream[truth.stem] = {}
        for settings in choices:
            clusterer = VoiceClusterer(settings)
            key = f"{settings.threshold:g}/{settings.heard_once:g}"
            lines = [Line(s.start_s, s.end_s,
                          clusterer.assign(e, len(s.audio) / SAMPLE_RATE))
                     for s, e in zip(cut, embeddings, strict=True)]
            result = score(turns, lines)
            per_stream[truth.stem][key] = result.to_json()
            totals[kind][key].append(result)
    return {"streams": per_stream,
            "kinds": {kind: {t: summary(results) for t, results in by.items()}
                      for kind, by in sorted(totals.items())}}


def summary(results: list[VoiceScore]) -> dict:
    """Streams of one kind together: lines right over all lines, the mean DER, how many
    streams opened exactly as many voices as spoke."""
    lines = sum(r.lines for r in results)
    return {"streams": len(results), "lines": lines,
            "line_accuracy": round(sum(r.lines_right for r in results) / max(1, lines), 4),
            "der": round(float(np.mean([r.der for r in results])), 4),
            "voices_exact": sum(1 for r in results if r.voices == r.speakers),
            "voices_opened": [r.voices for r in results],
            "turn_changes_inside": sum(r.turn_changes_inside for r in results)}
