"""The seams of the speech path, written down as the engine, the pipeline and the commands
call them: `Hearing` (segments to transcripts), `Reader` (sentences to facts),
`TripletExtractor` (segments to transcripts and facts, what the engine batches) and
`VoiceEncoder` (segments to speaker embeddings).

Torch-free on purpose: the server and its tests can name the seams without loading a model.
Every call is blocking and belongs on a worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

from streamre.triplets import Extraction, Triplet

if TYPE_CHECKING:
    from streamre.hearing.transcriber import Heard

# Each segment's phrases to expect (names, project words), or None: none for any segment.
Vocabularies = Sequence[Sequence[str]] | None


class Hearing(Protocol):
    """Waveforms (16 kHz, int16 or float) in, one `Heard` each out."""

    name: str
    device: str

    def transcribe(self, waveforms: Sequence[np.ndarray],
                   vocabularies: Vocabularies = None) -> list["Heard"]: ...

    def window_of(self, waveform: np.ndarray) -> int:
        """The window a segment is heard in; only segments of one window share a batch."""

    def warmup(self) -> None: ...


class Reader(Protocol):
    """Written sentences in, each one's facts out (best first, names as written): what reads
    Whisper's transcripts, typed chat lines and notes."""

    name: str
    device: str

    def extract(self, texts: Sequence[str]) -> list[list[Triplet]]: ...

    def names(self, texts: Sequence[str]) -> list[list[str]]:
        """The names in each text, in order, as written (a meeting's context, a chat line)."""

    def warmup(self) -> None: ...


class TripletExtractor(Protocol):
    """Segments in, each one's transcript and facts out: what the engine batches.

    `asr` names the Whisper that hears when hearing is apart from reading (None when one model
    does both). An extractor that hears without a vocabulary takes `vocabularies` and leaves
    them; one whose segments can all share a batch answers one window for all."""

    name: str
    device: str
    asr: str | None

    def extract(self, waveforms: Sequence[np.ndarray],
                vocabularies: Vocabularies = None) -> list[Extraction]: ...

    def window_of(self, waveform: np.ndarray) -> int: ...

    def warmup(self) -> None: ...


class VoiceEncoder(Protocol):
    """Segments (16 kHz, int16 or float) in, one unit vector each out that says whose voice it
    is: shape = (len, dim)."""

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_windows(self, waveforms: Sequence[np.ndarray],
                      starts_of: Callable[[int], list[int]]) -> list[np.ndarray]:
        """Each segment's 1.6 s windows, from the frames `starts_of(samples)` gives: per
        segment, (windows, dim) unit rows."""


def read_sentences(reader: Reader, texts: Sequence[str], with_names: bool = False
                   ) -> list[Extraction]:
    """Each text as an `Extraction` of the reader's facts (and, `with_names`, the names it
    finds); an empty text (silence) has none and is not read."""
    said = [i for i, text in enumerate(texts) if text]
    found = reader.extract([texts[i] for i in said]) if said else []
    names = reader.names([texts[i] for i in said]) if said and with_names else [[]] * len(said)
    answers = [Extraction(text, []) for text in texts]
    for i, facts, named in zip(said, found, names, strict=True):
        answers[i] = Extraction(texts[i], facts, tuple(named))
    return answers
