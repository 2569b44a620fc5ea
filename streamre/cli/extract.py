"""`streamre extract`: the server's segmenter and models on files, one JSON line per segment.

As in the server, a segment's facts are by default the text model's, read from the speech
model's transcript (`--speech-facts`)."""

from __future__ import annotations

import json
import sys

from streamre.audio import Segment, VadConfig, VadSegmenter, read_audio
from streamre.config import facts_from_transcript
from streamre.inference import ModelExtractor
from streamre.inference.pipeline import PipelineExtractor
from streamre.inference.text_extractor import load_text_extractor, resolve_text_model

CHUNK = 16000  # feed the segmenter a second at a time, as a live stream would


def extract_files(files: list[str], model: str = "", device: str = "auto", batch_size: int = 8,
                  out=None, text_model: str = "", speech_facts: str = "auto",
                  ensemble: bool = False, min_votes: int = 2) -> int:
    out = out or sys.stdout
    text_source = resolve_text_model(text_model) \
        if facts_from_transcript(speech_facts, ensemble) else None
    if speech_facts == "text" and text_source is None:
        raise ValueError("--speech-facts text needs a text model (--text-model)")
    extractor = ModelExtractor.load(model or None, device, ensemble=ensemble,
                                    min_votes=min_votes)
    if text_source is not None:
        extractor = PipelineExtractor(extractor, load_text_extractor(text_source, device))
    vad = VadConfig()
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
