"""What the VAD segmenter says about a stream: speech started or ended, a segment closed, an
utterance dropped. Positions are in samples at 16 kHz from the start of the stream."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

from streamre import SAMPLE_RATE


@dataclass(frozen=True)
class _SpeechMark:
    sample: int  # stream position, in samples at 16 kHz

    @property
    def t(self) -> float:
        return self.sample / SAMPLE_RATE


class SpeechStart(_SpeechMark):
    """The trigger fired; `sample` is the first voiced frame."""


class SpeechEnd(_SpeechMark):
    """The hangover ran out; `sample` is the end of the last voiced frame."""


@dataclass(frozen=True)
class Segment:
    index: int
    start: int  # first sample, in stream samples at 16 kHz
    end: int  # one past the last sample
    audio: np.ndarray = field(repr=False)  # int16, shape (end - start,)
    forced_split: bool = False  # begins or ends at a forced split
    overlap: int = 0  # leading samples shared with the previous segment
    voiced_end: int | None = None  # end of its last voiced frame (None: not known)
    turn_edges: tuple[bool, bool] = (False, False)  # begins, ends where its voice changed

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE

    def pieces(self, cuts: list[int]) -> list[Segment]:
        """The segment cut at `cuts` (samples into it, ascending), as where its voice changes
        (`streamre.voices.turns`). Pieces keep its index (their owner numbers them); the first
        keeps its overlap with the segment before, the last its voiced end, and only they can
        begin or end at a forced split; `turn_edges` says which of a piece's ends is a cut."""
        bounds = [0, *cuts, len(self.audio)]
        last = len(bounds) - 2
        return [replace(self, start=self.start + a, end=self.start + b,
                        audio=self.audio[a:b].copy(),
                        forced_split=self.forced_split and i in (0, last),
                        overlap=self.overlap if i == 0 else 0,
                        voiced_end=self.voiced_end if i == last else None,
                        turn_edges=(i > 0 or self.turn_edges[0],
                                    i < last or self.turn_edges[1]))
                for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]


@dataclass(frozen=True)
class OpenUtterance:
    """The utterance being spoken, as the segmenter has it so far."""
    start: int  # where its segment will begin (after a forced split: the continuation's)
    voiced_from: int
    voiced_to: int  # end of its latest voiced frame
    heard_to: int  # end of the audio classified so far
    silent_samples: int  # unvoiced audio since its latest voiced frame


@dataclass(frozen=True)
class Dropped:
    start: int
    end: int


Event = Union[SpeechStart, SpeechEnd, Segment, Dropped]
