"""`streamre eval-voices`: tell the voices of recorded streams apart as `serve` does, and score
it against who really spoke (`streamre.voices.scoring`).

A stream is `<name>.wav` beside `<name>.json` ({"turns": [{start, end, speaker}], ...}, as
`tools/make_voice_streams.py` writes them). The VAD cuts it as the server does, the encoder
embeds every segment once, and the clusterer numbers them at each threshold asked for, so a
sweep costs one pass of the encoder. With `turns` on, a long segment's windows are embedded
once too, and it is cut where its voice changes (`streamre.voices.turns`) at each
`turn_threshold` asked for; each piece is embedded as a segment of its own (less the audio
next to its cuts, as in serve).
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
from streamre.voices.encoder import EMBEDDING_SIZE, SpeakerEncoder
from streamre.voices.turns import change_points, cut_samples, voice_audio, window_starts
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
    scores, keyed `<threshold>/<heard_once>` (and ` turns <turn_threshold>` with turns on)."""
    encoder = SpeakerEncoder()
    vad = vad or VadConfig()
    per_stream: dict[str, dict[str, dict]] = {}
    totals: dict[str, dict[str, list[VoiceScore]]] = defaultdict(lambda: defaultdict(list))
    for truth in tqdm(streams(Path(folder)), desc="streams", disable=not progress):
        spec = json.loads(truth.read_text())
        turns = [Turn(float(t["start"]), float(t["end"]), str(t["speaker"]))
                 for t in spec["turns"]]
        cut = segments(read_audio(truth.with_suffix(".wav")), vad)
        kind = truth.stem.rsplit("-", 1)[0] if truth.stem.count("-") > 1 else truth.stem
        voices = StreamVoices(encoder, cut, any(c.turns == "on" for c in choices))
        per_stream[truth.stem] = {}
        for settings in choices:
            clusterer = VoiceClusterer(settings)
            key = choice_key(settings)
            lines = [Line(piece.start_s, piece.end_s,
                          clusterer.assign(embedding, len(piece.audio) / SAMPLE_RATE))
                     for piece, embedding in voices.pieces(settings)]
            result = score(turns, lines)
            per_stream[truth.stem][key] = result.to_json()
            totals[kind][key].append(result)
    return {"streams": per_stream,
            "kinds": {kind: {t: summary(results) for t, results in by.items()}
                      for kind, by in sorted(totals.items())}}


def choice_key(settings: VoiceSettings) -> str:
    key = f"{settings.threshold:g}/{settings.heard_once:g}"
    return key + (f" turns {settings.turn_threshold:g}" if settings.turns == "on" else "")


class StreamVoices:
    """One stream's segments as the encoder sees them, each embedded once; with `turns`, also
    each long segment's windows, and each piece once it is cut."""

    def __init__(self, encoder: SpeakerEncoder, cut: list[Segment], turns: bool) -> None:
        self.encoder, self.cut = encoder, cut
        self.embeddings = self._embed([s.audio for s in cut])
        self.windows = self._batched(lambda batch: encoder.embed_windows(batch, window_starts),
                                     [s.audio for s in cut]) if turns else []
        self._pieces: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    def pieces(self, settings: VoiceSettings) -> list[tuple[Segment, np.ndarray]]:
        """Each segment, or with turns each of its pieces, with its embedding, in order."""
        if settings.turns != "on":
            return list(zip(self.cut, self.embeddings, strict=True))
        found = []
        for i, (segment, windows) in enumerate(zip(self.cut, self.windows, strict=True)):
            cuts = tuple(cut_samples(segment.audio,
                                     change_points(windows, settings.turn_threshold)))
            if not cuts:
                found.append((segment, self.embeddings[i]))
                continue
            pieces = segment.pieces(list(cuts))
            if (i, cuts) not in self._pieces:
                self._pieces[(i, cuts)] = self._embed([voice_audio(p) for p in pieces])
            found += zip(pieces, self._pieces[(i, cuts)], strict=True)
        return found

    def _embed(self, audio: list[np.ndarray]) -> np.ndarray:
        rows = self._batched(self.encoder.embed, audio)
        return np.stack(rows) if rows else np.zeros((0, EMBEDDING_SIZE), np.float32)

    @staticmethod
    def _batched(call, audio: list[np.ndarray]) -> list:
        return [row for i in range(0, len(audio), EMBED_BATCH)
                for row in call(audio[i:i + EMBED_BATCH])]


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
