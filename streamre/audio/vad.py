"""Voice activity segmentation: a synchronous state machine from 16 kHz samples to utterances.

Feed it samples in chunks of any size; it classifies 30 ms frames with webrtcvad (or any
`is_speech` callable), and returns events:

- `SpeechStart` / `SpeechEnd` when the trigger fires and when the hangover runs out;
- `Segment` when an utterance is closed: its samples, its position in the stream (in samples),
  whether it was cut at a forced split, and how many of its first samples it shares with the
  segment before it (non-zero only after a forced split);
- `Dropped` when an utterance's voiced span is below the minimum (it is counted, not sent on).

Segments never overlap except for the declared `overlap`, never exceed `max_samples`, and come in
stream order. Nothing here does I/O or knows about asyncio.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from streamre import SAMPLE_RATE
from streamre.settings import setting
from streamre.audio.events import Dropped, Event, OpenUtterance, Segment, SpeechEnd, SpeechStart

FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 480
SPLIT_SEARCH_MS = 2000  # where the quietest frame for a forced split is looked for


@dataclass(frozen=True)
class VadConfig:
    """How the segmenter hears speech: webrtcvad's aggressiveness, the trigger that starts an
    utterance, the hangover that ends it, and the bounds on a segment's length."""
    aggressiveness: int = setting(2, "webrtcvad aggressiveness, 0 (least) to 3 (most)")
    trigger_frames: int = setting(5, "frames in the trigger ring (30 ms each)")
    trigger_ratio: float = setting(0.6, "voiced share of the ring that starts speech")
    pre_roll_ms: int = setting(300, "audio kept before the detected start of speech")
    hangover_ms: int = setting(500, "silence that ends an utterance")
    min_utterance_ms: int = setting(250, "voiced span below which an utterance is dropped")
    max_utterance_s: float = setting(15.0, "longest segment; longer speech is force-split")
    split_overlap_ms: int = setting(300, "overlap between the two halves of a forced split")

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {self.aggressiveness}")
        if self.trigger_frames < 1 or not 0 < self.trigger_ratio <= 1:
            raise ValueError("trigger_frames must be >= 1 and trigger_ratio in (0, 1]")
        if min(self.pre_roll_ms, self.hangover_ms, self.min_utterance_ms,
               self.split_overlap_ms) < 0:
            raise ValueError("pre_roll_ms, hangover_ms, min_utterance_ms and split_overlap_ms "
                             "must not be negative")
        if self.max_samples <= 2 * self.overlap_samples + FRAME_SAMPLES:
            raise ValueError("max_utterance_s must exceed twice split_overlap_ms plus one frame")

    @property
    def max_samples(self) -> int:
        return int(self.max_utterance_s * SAMPLE_RATE)

    @property
    def overlap_samples(self) -> int:
        return self.split_overlap_ms * SAMPLE_RATE // 1000

    @property
    def pre_roll_samples(self) -> int:
        return self.pre_roll_ms * SAMPLE_RATE // 1000

    @property
    def min_voiced_samples(self) -> int:
        return self.min_utterance_ms * SAMPLE_RATE // 1000

    @property
    def hangover_frames(self) -> int:
        return max(1, math.ceil(self.hangover_ms / FRAME_MS))

    @property
    def trigger_count(self) -> int:
        return max(1, math.ceil(self.trigger_ratio * self.trigger_frames))


SpeechClassifier = Callable[[np.ndarray], bool]


def webrtc_classifier(aggressiveness: int) -> SpeechClassifier:
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    return lambda frame: vad.is_speech(frame.tobytes(), SAMPLE_RATE)


class _SampleBuffer:
    """Samples from absolute index `start` on; appends amortised, old samples trimmed."""

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE, dtype=np.int16)
        self._len = 0
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + self._len

    def append(self, samples: np.ndarray) -> None:
        need = self._len + len(samples)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=np.int16)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len:need] = samples
        self._len = need

    def view(self, a: int, b: int) -> np.ndarray:
        return self._data[a - self.start: b - self.start]

    def trim_before(self, index: int) -> None:
        drop = min(max(0, index - self.start), self._len)
        if drop:
            self._data[: self._len - drop] = self._data[drop: self._len].copy()
            self._len -= drop
            self.start += drop


class VadSegmenter:
    """One stream's utterances, from 16 kHz samples fed in chunks of any size (see the module).

    Args:
        config: trigger, hangover, pre-roll and segment-length settings.
        is_speech: classifies one 30 ms frame of int16 samples; webrtcvad at the config's
            aggressiveness by default (tests pass their own).
    """

    def __init__(self, config: VadConfig = VadConfig(),
                 is_speech: SpeechClassifier | None = None) -> None:
        self.config = config
        self._is_speech = is_speech or webrtc_classifier(config.aggressiveness)
        self._buf = _SampleBuffer()
        self._pos = 0  # start of the next frame to classify
        self._ring: deque[tuple[int, bool]] = deque(maxlen=config.trigger_frames)
        self._speaking = False
        self._seg_start = 0
        self._seg_overlap = 0
        self._seg_forced = False
        self._voiced_from = 0
        self._voiced_to = 0
        self._silent_frames = 0
        self._prev_end = 0  # end of the last segment: pre-roll never reaches back past it
        self._next_index = 0
        self._closed = False
        self.dropped_short = 0
        self.forced_splits = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def open_utterance(self) -> OpenUtterance | None:
        """The utterance being spoken (None between utterances)."""
        if not self._speaking:
            return None
        return OpenUtterance(self._seg_start, self._voiced_from, self._voiced_to, self._pos,
                             self._silent_frames * FRAME_SAMPLES)

    def audio(self, start: int, end: int) -> np.ndarray:
        """A copy of the open utterance's samples from `start` to `end`."""
        return self._buf.view(start, end).copy()

    def feed(self, samples: np.ndarray) -> list[Event]:
        if self._closed:
            raise RuntimeError("feed() after flush()")
        samples = np.asarray(samples)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise TypeError("samples must be a 1-D int16 array")
        self._buf.append(samples)
        events: list[Event] = []
        while self._pos + FRAME_SAMPLES <= self._buf.end:
            frame = self._buf.view(self._pos, self._pos + FRAME_SAMPLES)
            self._step(self._pos, self._pos + FRAME_SAMPLES, bool(self._is_speech(frame)), events)
            self._pos += FRAME_SAMPLES
        self._trim()
        return events

    def flush(self) -> list[Event]:
        """End of stream: classify the last partial frame and close any open utterance."""
        if self._closed:
            return []
        events: list[Event] = []
        end = self._buf.end
        if self._pos < end:
            frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            partial = self._buf.view(self._pos, end)
            frame[: len(partial)] = partial
            self._step(self._pos, end, bool(self._is_speech(frame)), events)
            self._pos = end
        if self._speaking:
            self._close(end, forced=False, events=events)
        self._closed = True
        return events

    # -- the state machine ------------------------------------------------------------------

    def _step(self, start: int, end: int, voiced: bool, events: list[Event]) -> None:
        cfg = self.config
        if not self._speaking:
            self._ring.append((start, voiced))
            if voiced and sum(v for _, v in self._ring) >= cfg.trigger_count:
                first_voiced = next(s for s, v in self._ring if v)
                self._ring.clear()
                self._speaking = True
                self._seg_start = max(first_voiced - cfg.pre_roll_samples, self._prev_end,
                                      self._buf.start)
                self._seg_overlap = 0
                self._seg_forced = False
                self._voiced_from, self._voiced_to = first_voiced, end
                self._silent_frames = 0
                events.append(SpeechStart(first_voiced))
            return
        if voiced:
            self._voiced_to = end
            self._silent_frames = 0
        else:
            self._silent_frames += 1
        if end - self._seg_start > cfg.max_samples:
            self._force_split(events)  # this frame would make it too long: cut before it
        if self._silent_frames >= cfg.hangover_frames:
            self._close(end, forced=False, events=events)

    def _close(self, end: int, forced: bool, events: list[Event]) -> None:
        """Close the open utterance at `end` (normal end of speech or end of stream)."""
        self._speaking = False
        self._ring.clear()
        events.append(SpeechEnd(min(self._voiced_to, end)))
        voiced = min(self._voiced_to, end) - self._voiced_from
        # A continuation of a forced split is kept whatever its length: it is part of a long
        # utterance, and dropping it would lose the speech after the overlap.
        if voiced < self.config.min_voiced_samples and not self._seg_forced:
            self.dropped_short += 1
            events.append(Dropped(self._seg_start, end))
        else:
            events.append(self._emit(end, self._seg_forced or forced))
        self._prev_end = end

    def _force_split(self, events: list[Event]) -> None:
        """Cut the open utterance at its quietest frame near the limit; keep speaking after it."""
        cfg = self.config
        latest = self._seg_start + cfg.max_samples - cfg.overlap_samples
        search = min(SPLIT_SEARCH_MS * SAMPLE_RATE // 1000,
                     cfg.max_samples - 2 * cfg.overlap_samples - FRAME_SAMPLES)
        earliest = latest - search
        first_frame = -(-earliest // FRAME_SAMPLES) * FRAME_SAMPLES
        candidates = range(first_frame, latest - FRAME_SAMPLES + 1, FRAME_SAMPLES)
        if len(candidates):
            split = min(candidates, key=lambda s: self._energy(s, s + FRAME_SAMPLES))
        else:
            split = latest
        split_end = split + cfg.overlap_samples
        events.append(self._emit(split_end, forced=True))
        self.forced_splits += 1
        self._seg_start = split
        self._seg_overlap = split_end - split
        self._seg_forced = True
        self._voiced_from = split
        self._prev_end = split_end

    def _emit(self, end: int, forced: bool) -> Segment:
        audio = self._buf.view(self._seg_start, end).copy()
        segment = Segment(self._next_index, self._seg_start, end, audio, forced, self._seg_overlap,
                          min(self._voiced_to, end))
        self._next_index += 1
        return segment

    def _energy(self, a: int, b: int) -> float:
        frame = self._buf.view(a, b).astype(np.float64)
        return float(np.mean(frame * frame)) if len(frame) else 0.0

    def _trim(self) -> None:
        cfg = self.config
        if self._speaking:
            keep_from = self._seg_start
        else:
            keep_from = self._pos - cfg.trigger_frames * FRAME_SAMPLES - cfg.pre_roll_samples
        # Trim in large steps so the copy in trim_before stays rare.
        if keep_from - self._buf.start > SAMPLE_RATE:
            self._buf.trim_before(keep_from)
