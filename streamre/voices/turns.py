"""Where the voice changes inside one segment: people who answer each other without a pause
make one utterance for the VAD, and a line holds two speakers. Pure and synchronous; the
encoder's windows come in, cut points go out.

The speaker encoder embeds 1.6 s windows every 0.4 s over the segment. A point where one
window ends and another begins is a change of voice where the mean of the three windows over
the 2.4 s before it (the last one ending there) and of the three over the 2.4 s after it (the
first one beginning there) are less alike than `threshold` (cosine). The least alike points
are cut first, each at least a window (1.6 s) from another cut, and a cut moves to the
quietest 30 ms within 0.3 s, as the VAD cuts a long utterance (`Segment.pieces` cuts). On the
voices dev streams (docs/evaluation.md) the threshold is the highest at which no voice alone
was ever cut, over 4 minutes and over 10. A piece's voice is embedded without the 0.2 s next to
each cut (half the windows' step, as far as a point may be from the change), where its
neighbour's voice may linger.
"""

from __future__ import annotations

import numpy as np

from streamre.audio import Segment
from streamre.voices.encoder import WINDOW_FRAMES
from streamre.whisper.features import HOP

TURN_STEP = 40  # frames (0.4 s) between windows; 0.8 and 1.6 s found fewer changes on dev
TURN_CONTEXT = 3  # windows each side of a point (2.4 s): two did about as well on dev, one cut voices alone
CONTEXT_FRAMES = (TURN_CONTEXT - 1) * TURN_STEP + WINDOW_FRAMES  # each side of a point
SHORTEST_LOOKED_AT = 2 * CONTEXT_FRAMES * HOP  # samples (4.8 s): room for one point
QUIET_FRAME = 480  # 30 ms, the VAD's frame
QUIET_SEARCH = 30 * HOP  # samples either side of a point where its cut may move
LEFT_OUT = TURN_STEP // 2 * HOP  # samples next to a cut that a piece's voice is not taken from


def window_starts(samples: int) -> list[int]:
    """The first frame of each window the encoder embeds to look for changes in a segment of
    `samples` (none below `SHORTEST_LOOKED_AT`)."""
    if samples < SHORTEST_LOOKED_AT:
        return []
    frames = 1 + samples // HOP
    return list(range(0, frames - WINDOW_FRAMES + 1, TURN_STEP))


def change_points(embeddings: np.ndarray, threshold: float) -> list[int]:
    """Frames where the voice changes, from the unit embeddings of a segment's
    `window_starts`, in order."""
    ahead = WINDOW_FRAMES // TURN_STEP  # the first window that begins where one ends
    scored = []
    for last in range(TURN_CONTEXT - 1, len(embeddings) - ahead - TURN_CONTEXT + 1):
        before = embeddings[last - TURN_CONTEXT + 1:last + 1].mean(axis=0)
        after = embeddings[last + ahead:last + ahead + TURN_CONTEXT].mean(axis=0)
        alike = float(before @ after) / max(
            float(np.linalg.norm(before) * np.linalg.norm(after)), 1e-8)
        if alike < threshold:
            scored.append((alike, last * TURN_STEP + WINDOW_FRAMES))
    cuts: list[int] = []
    for _, point in sorted(scored):
        if all(abs(point - cut) >= WINDOW_FRAMES for cut in cuts):
            cuts.append(point)
    return sorted(cuts)


def quietest(audio: np.ndarray, around: int) -> int:
    """The start of the quietest 30 ms of `audio` within `QUIET_SEARCH` samples of `around`."""
    first = max(0, around - QUIET_SEARCH)
    last = min(len(audio) - QUIET_FRAME, around + QUIET_SEARCH)
    if last < first:
        return around
    starts = range(first, last + 1, QUIET_FRAME)
    power = [float(np.mean(np.square(audio[s:s + QUIET_FRAME], dtype=np.float64)))
             for s in starts]
    return starts[int(np.argmin(power))]


def cut_samples(audio: np.ndarray, points: list[int]) -> list[int]:
    """Change points (frames) as cuts in a segment's `audio` (samples), each at its quiet."""
    return [quietest(audio, point * HOP) for point in points]


def voice_audio(segment: Segment) -> np.ndarray:
    """The audio a segment's voice is embedded from: all of it, but for the `LEFT_OUT` next to
    an end where it was cut from its neighbour's voice (`Segment.pieces`)."""
    if not any(segment.turn_edges):
        return segment.audio
    first = LEFT_OUT if segment.turn_edges[0] else 0
    last = len(segment.audio) - (LEFT_OUT if segment.turn_edges[1] else 0)
    return segment.audio[first:last] if last - first >= LEFT_OUT else segment.audio
