"""When the open utterance is heard again for live captions: a synchronous pacer, no I/O.

While someone speaks, what they said so far is heard again every `every_s` of stream audio, and
once more at the first pause (`settle_ms` of silence after speech not heard yet). A hearing at a
pause covers all of the utterance's speech: if nobody speaks again before the hangover closes
the utterance, its final can take that text instead of hearing the segment a second time.

Only utterances with enough voiced audio to be kept (`min_voiced_samples`) get partials, so a
partial is always followed by its segment. Dropping partials under load is the shell's and the
batching core's; this only says which audio is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamre import SAMPLE_RATE
from streamre.audio.events import OpenUtterance, Segment


@dataclass(frozen=True)
class PartialPacing:
    every_s: float = 1.0  # stream audio between two hearings of the open utterance (0: none)
    settle_ms: int = 180  # silence after unheard speech that asks for one more (0: never)

    def __post_init__(self) -> None:
        if self.every_s < 0 or self.settle_ms < 0:
            raise ValueError("partial pacing must not be negative")

    @property
    def on(self) -> bool:
        return self.every_s > 0


NO_PARTIALS = PartialPacing(every_s=0, settle_ms=0)


@dataclass(frozen=True)
class Partial:
    """The open utterance so far, to be heard for a caption."""
    start: int  # where its utterance's segment begins, in stream samples
    end: int  # one past the last sample heard
    audio: np.ndarray = field(repr=False)
    at_pause: bool = False  # heard at a pause: it holds all of the utterance's speech so far

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE


class PartialPacer:
    """Asked after each chunk of audio whether the open utterance is due to be heard."""

    def __init__(self, pacing: PartialPacing, min_voiced_samples: int) -> None:
        self.pacing = pacing
        self.min_voiced = min_voiced_samples
        self._every = int(pacing.every_s * SAMPLE_RATE)
        self._settle = pacing.settle_ms * SAMPLE_RATE // 1000
        self._start: int | None = None  # the utterance the last partial belonged to
        self._heard_to = 0  # where that utterance was last heard up to

    def due(self, utterance: OpenUtterance | None) -> tuple[int, int, bool] | None:
        """(start, end, at_pause) of the audio to hear now, or None."""
        if utterance is None or not self.pacing.on:
            return None
        if utterance.start != self._start:  # a new utterance, or a forced split's continuation
            self._start, self._heard_to = utterance.start, utterance.start
        if utterance.voiced_to - utterance.voiced_from < self.min_voiced:
            return None
        if utterance.heard_to - self._heard_to >= self._every:
            at_pause = False
        elif (self._settle and utterance.silent_samples >= self._settle
              and self._heard_to < utterance.voiced_to):
            at_pause = True
        else:
            return None
        self._heard_to = utterance.heard_to
        return utterance.start, utterance.heard_to, at_pause


def heard_whole(partial_start: int, partial_end: int, segment: Segment) -> bool:
    """Whether a partial heard all of the segment's speech and nothing past its end (a
    partial heard past a forced split holds the next segment's words): its words can be the
    final's."""
    return (partial_start == segment.start and segment.voiced_end is not None
            and segment.voiced_end <= partial_end <= segment.end)
