"""`streamre extract`: the server's segmenter and speech path on files, one JSON line per
segment. Both are built as the server builds them: the speech path by `SpeechPath`, the
segmenter from the same `--vad-*` settings as `serve`'s."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from streamre.audio import Segment, VadConfig, VadSegmenter, read_audio
from streamre.inference.speech_path import ResearchSettings, SpeechPath, SpeechSettings
from streamre.settings import nested

CHUNK = 16000  # feed the segmenter a second at a time, as a live stream would


@dataclass(frozen=True)
class ExtractSettings(ResearchSettings, SpeechSettings):
    """What `extract` is told: the speech path's settings, and the segmenter's, named as for
    `serve` (`--vad-hangover-ms`, ...)."""

    vad: VadConfig = nested(VadConfig, "voice activity detection")


def extract_files(files: list[str], settings: ExtractSettings, batch_size: int = 8,
                  out=None) -> int:
    out = out or sys.stdout
    extractor = SpeechPath(settings, settings).load_speech()
    vad = settings.vad
    status = 0
    for path in files:
        try:
            audio = read_audio(path)
        except ValueError as e:
            print(f"streamre extract: {e}", file=sys.stderr)
            status = 1
            continue
        segmenter = VadSegmenter(vad)
        events = []
        for offset in range(0, len(audio), CHUNK):
            events += segmenter.feed(audio[offset:offset + CHUNK])
        segments = [e for e in events + segmenter.flush() if isinstance(e, Segment)]
        for first in range(0, len(segments), batch_size):
            batch = segments[first:first + batch_size]
            answers = extractor.extract([s.audio for s in batch])
            for segment, answer in zip(batch, answers, strict=True):
                print(json.dumps({
                    "file": path, "segment_id": segment.index, "start": round(segment.start_s, 3),
                    "end": round(segment.end_s, 3), "forced_split": segment.forced_split,
                    "text": answer.text, "triplets": [t.to_json() for t in answer.triplets]}),
                    file=out, flush=True)
    return status
