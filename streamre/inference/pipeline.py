"""The product's speech path: Whisper hears each segment, the text extractor reads what it
heard. Hearing and reading are measured apart and together in `docs/evaluation.md`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from streamre.hearing.vocabulary import merged
from streamre.inference.seam import Hearing, Reader, Vocabularies, read_sentences
from streamre.triplets import Extraction


class PipelineExtractor:
    """A `TripletExtractor`: `hearing` transcribes, `reader` (a text extractor) reads.

    Args:
        hearing: a `Hearing` (Whisper behind `streamre.hearing`).
        reader: a `Reader` (a text extractor): sentences in, triplets out.
        vocabulary: phrases every segment is heard with, after its own (`--vocabulary FILE`).
    """

    def __init__(self, hearing: Hearing, reader: Reader, vocabulary: tuple[str, ...] = ()) -> None:
        self.hearing = hearing
        self.reader = reader
        self.vocabulary = vocabulary
        self.name = f"{hearing.name}+{reader.name}"
        self.device = hearing.device
        self.asr = hearing.name

    def warmup(self) -> None:
        self.hearing.warmup()
        self.reader.warmup()

    def window_of(self, waveform: np.ndarray) -> int:
        """The window a segment is heard in; segments of one window share a batch."""
        return self.hearing.window_of(waveform)

    def extract(self, waveforms: Sequence[np.ndarray],
                vocabularies: Vocabularies = None) -> list[Extraction]:
        """Each segment's transcript and facts; `vocabularies`: each one's phrases, if any."""
        return self.read(self.hear(waveforms, vocabularies))

    def hear(self, waveforms: Sequence[np.ndarray],
             vocabularies: Vocabularies = None) -> list[str]:
        """Each segment's transcript, as `extract` hears it (a caption, or a final's words)."""
        if self.vocabulary:
            vocabularies = [merged(v, self.vocabulary) for v in
                            vocabularies or [()] * len(waveforms)]
        return [h.text for h in self.hearing.transcribe(waveforms, vocabularies)]

    def read(self, texts: Sequence[str]) -> list[Extraction]:
        """Each transcript's facts."""
        return read_sentences(self.reader, texts)
